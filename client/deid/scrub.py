"""Scrubbing free text: a row's own values, then the identifier patterns.

This module owns :func:`scrub_free_text` and the two steps it and the
pipeline run over a block of free text: :func:`_mark_free_text` (control
bytes neutralised, the row's own values overwritten by placeholder bytes,
see :mod:`~hospfed.client.deid.names`) and :func:`_scrub_patterns` (one RE2
pass over the identifier patterns and the placeholder runs, each match
swapped for its tag, see :mod:`~hospfed.client.deid.patterns`), with the
count of replacements per tag.
"""

from __future__ import annotations

from collections import Counter
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hospfed.client.deid.blocks import _in_parallel, _row_blocks
from hospfed.client.deid.names import _mark_own_values
from hospfed.client.deid.needles import _OwnValues
from hospfed.client.deid.patterns import _COMBINED, _KIND_TAGS, _classify
from hospfed.client.deid.textbuf import TEXT, _plain

# Free text is scrubbed in two steps over the Arrow byte buffers, a block of
# rows at a time. (1) Each row's own identifier values ("needles": the words
# of the patient's name, the city, the street address) are found as whole
# words with NumPy and overwritten, byte for byte, with a placeholder byte of
# their tag, so that nothing moves. (2) One RE2 pass marks every match of the
# identifier patterns and every run of placeholders; each value is split at
# the marks, the marked pieces are classified and swapped for their tags, and
# the value is joined back. A word is a run of ASCII letters or a run of
# digits, so "Smith555-1234" holds the word "smith". Rows with text or
# needles that are not ASCII take a per-row path for step 1 (case folding can
# change the length of non-ASCII text, so byte positions would not line up).
# The needles are indexed once per block by row and first 2 bytes
# (_NeedleIndex); the residual scan looks for them again, with the same
# index, in the scrubbed text, independently of what step 1 found.

_MARK = "\x00"
_PLACEHOLDER_RUN = "[\\x01-\\x03]+"
_CONTROL = "[\\x00-\\x03]"
_SCRUB_PATTERN = f"{_COMBINED}|(?:{_PLACEHOLDER_RUN})"


def scrub_free_text(
    notes: pa.Array, own_values: _OwnValues | None = None
) -> tuple[pa.Array, Counter[str]]:
    """Remove identifiers from free text.

    Each row's own identifier values (the words of the patient's name, the
    street address, the city, ...) are replaced by their tag (``[NAME]``,
    ``[LOCATION]``) wherever they stand as whole words, in any case; then
    every match of :data:`.IDENTIFIER_PATTERNS` by its tag (``[PHONE]``,
    ``[SSN]``, ``[DATE]``, ``[EMAIL]``, ``[MRN]``, ``[ADDRESS]``, ...).

    Parameters
    ----------
    notes : pyarrow.Array
        The free text, one value per row.
    own_values : optional
        The rows' own identifier values (built by :func:`.deidentify`).

    Returns
    -------
    notes : pyarrow.Array
        The scrubbed text.
    counts : collections.Counter
        Replacements per tag.

    """
    notes = _plain(notes)

    def scrub(rows: slice) -> tuple[pa.Array, Counter[str], Counter[str]]:
        own = None if own_values is None else own_values.in_rows(rows)
        marking: Counter[str] = Counter()
        part = notes.slice(rows.start, rows.stop - rows.start)
        text, counts = _scrub_patterns(_mark_free_text(part, own, marking))
        return text, marking, counts

    done = _in_parallel([partial(scrub, rows) for rows in _row_blocks(len(notes))])
    counts: Counter[str] = Counter()
    for _, marking, _ in done:
        counts.update(marking)
    for _, _, pattern_counts in done:
        counts.update(pattern_counts)
    texts = [text for text, _, _ in done]
    return (texts[0] if len(texts) == 1 else pa.concat_arrays(texts)), counts


def _mark_free_text(
    notes: pa.Array, own_values: _OwnValues | None, counts: Counter[str]
) -> pa.Array:
    """Step 1: neutralise control bytes, mark each row's own values."""
    notes = _plain(notes)
    if pc.any(pc.match_substring_regex(notes, _CONTROL)).as_py():
        notes = pc.replace_substring_regex(notes, _CONTROL, " ")
    if own_values is not None and len(own_values):
        notes = _mark_own_values(notes, own_values, counts)
    return notes


def _scrub_patterns(notes: pa.Array) -> tuple[pa.Array, Counter[str]]:
    """Replace pattern matches and own-value placeholders by their tags.

    One RE2 pass wraps each match in NUL bytes; split on them, each value
    becomes a list whose odd items are the matches, which are classified,
    swapped for their tags, and joined back.
    """
    counts: Counter[str] = Counter()
    marked = pc.replace_substring_regex(notes, _SCRUB_PATTERN, f"{_MARK}\\0{_MARK}")
    pieces = pc.split_pattern(marked, _MARK)
    flat = pc.list_flatten(pieces)
    if len(flat) == len(notes) - notes.null_count:
        return notes, counts  # no match anywhere
    # A value's odd items (counting from 0 within its list) are its matches.
    parent = pc.list_parent_indices(pieces).to_numpy()
    starts = pieces.offsets.to_numpy()
    position = np.arange(len(flat)) + starts[0] - starts[parent]
    is_match = pa.array(position % 2 == 1)
    kinds = _classify(flat.filter(is_match))
    for kind, number in enumerate(np.bincount(kinds, minlength=len(_KIND_TAGS))):
        if number:
            counts[_KIND_TAGS[kind]] += int(number)
    tags = pa.array(_KIND_TAGS, TEXT).take(kinds)
    tagged = pc.replace_with_mask(flat, is_match, tags)
    rebuilt = pa.ListArray.from_arrays(pieces.offsets, tagged, mask=pieces.is_null())
    return pc.binary_join(rebuilt, pa.scalar("", TEXT)), counts
