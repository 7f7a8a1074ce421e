"""Finding each row's own values in its text: the fast matcher and its reference.

This module owns the residual check's search for a row's own identifier
values in its text (:mod:`~hospfed.client.deid.residual`), built apart from
the scrubber's own-word removal (:class:`~hospfed.client.deid.scrub.OwnWords`):
finding a row's needles in its text as whole words, in any case, and
(:func:`_mark_free_text`) overwriting them byte for byte with the
placeholder byte of their tag.
:func:`_find_own_values` does it vectorised over the Arrow buffers of ASCII
rows (candidates from :class:`~hospfed.client.deid.needles._NeedleIndex`,
bytes compared 8 at a time); rows whose text or needles are not ASCII go
value by value through :func:`replace_words`, the simple per-row
definition the fast path follows. The residual scan uses the same finder
on the scrubbed text.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hospfed.client.deid.needles import (
    _HEAD_BITS,
    _PLACEHOLDERS,
    _NeedleIndex,
    _OwnValues,
)
from hospfed.client.deid.textbuf import (
    _DIGIT,
    _LETTER,
    _OTHER,
    TEXT,
    U8,
    Bools,
    Ints,
    _buffers,
    _byte_windows,
    _char_classes,
    _heads,
    _is_ascii,
    _ramp,
    _row_of,
    _same_bytes,
    _text_from,
    _word_starts,
)


@dataclass(frozen=True)
class _Hits:
    """Whole-word occurrences of needles: byte spans and the needle of each."""

    starts: Ints
    ends: Ints
    needles: Ints

    @classmethod
    def join(cls, parts: Sequence[_Hits]) -> _Hits:
        if not parts:
            nothing = np.zeros(0, np.int64)
            return cls(nothing, nothing, nothing)
        return cls(
            np.concatenate([p.starts for p in parts]),
            np.concatenate([p.ends for p in parts]),
            np.concatenate([p.needles for p in parts]),
        )


def _find_own_values(lowered: pa.Array, own: _OwnValues) -> tuple[_Hits, Ints]:
    """Find each row's needles in its (lowercased) text, as whole words.

    Returns the hits in ASCII rows, found vectorised, and the rows that need
    the per-row path (text that is not ASCII, or a needle that does not start
    with an ASCII letter or digit). A hit is a needle's bytes where a word of
    its row starts, ending where a word ends (or with a byte that is neither
    a letter nor a digit). The candidates are the words that start with the
    first 2 bytes (the head) of one of their row's needles.
    """
    offsets, data = _buffers(lowered)
    ascii_rows = _is_ascii(lowered)
    slow_rows = np.unique(own.rows[(own.first_word == 0) | ~ascii_rows[own.rows]])
    index = own.index
    if not index.needles.size:
        return _Hits.join([]), slow_rows
    classes = _char_classes(data)
    starts = _word_starts(classes, offsets)
    begin, row, needle = _candidates(starts, offsets, data, index, slow_rows)
    end = begin + own.ends[needle] - own.starts[needle]
    row_end = offsets[row + 1]
    fits = np.flatnonzero(end <= row_end)
    begin, end, row_end, needle = begin[fits], end[fits], row_end[fits], needle[fits]
    ok = _same_bytes(
        _byte_windows(data), begin, index.windows, own.starts[needle], end - begin
    )
    last_class = _char_classes(own.data[own.ends[needle] - 1])
    next_class = classes[np.minimum(end, max(data.size - 1, 0))]
    ok &= (end >= row_end) | (last_class == _OTHER) | (next_class != last_class)
    return _Hits(begin[ok], end[ok], needle[ok]), slow_rows


def _candidates(
    starts: Ints, offsets: Ints, data: U8, index: _NeedleIndex, slow_rows: Ints
) -> tuple[Ints, Ints, Ints]:
    """(word start, row, needle) where a word starts with a needle of its row's head.

    The row's bits rule most words out cheaply; the rest are joined with the
    needles on (row, head). Rows on the per-row path are left out.
    """
    word_row = _row_of(starts, offsets)
    heads = _heads(data, starts)
    maybe = np.flatnonzero(index.row_bits[word_row] & _HEAD_BITS[heads])
    if slow_rows.size:
        slow = np.zeros(len(offsets) - 1, dtype=bool)
        slow[slow_rows] = True
        maybe = maybe[~slow[word_row[maybe]]]
    row = word_row[maybe].astype(np.int64)
    keys = (row << 16) | heads[maybe].astype(np.int64)
    low = np.searchsorted(index.keys, keys, side="left")
    count = np.searchsorted(index.keys, keys, side="right") - low
    needle = index.needles[np.repeat(low, count) + _ramp(count)]
    return np.repeat(starts[maybe], count), np.repeat(row, count), needle


def _first_non_overlapping(hits: _Hits) -> _Hits:
    """Keep hits that do not overlap an earlier (or, at one start, longer) hit.

    Of two equal hits (two needles with the same text), the first needle's
    is kept.
    """
    if not hits.starts.size:
        return hits
    order = np.lexsort((hits.needles, hits.starts - hits.ends, hits.starts))
    starts, ends = hits.starts[order], hits.ends[order]
    reach = np.maximum.accumulate(ends)
    keep = np.ones(starts.size, dtype=bool)
    keep[1:] = starts[1:] >= reach[:-1]
    _keep_greedily_in_clusters(starts, ends, keep)
    return _Hits(starts[keep], ends[keep], hits.needles[order][keep])


def _keep_greedily_in_clusters(starts: Ints, ends: Ints, keep: Bools) -> None:
    """Re-decide hits in runs of overlapping hits, left to right (in place).

    A hit that overlaps only a hit that was itself dropped must be kept
    ("Walla Walla Walla Walla" holds two whole occurrences). Such runs are
    rare, so they are walked in Python; the rest stays vectorised.
    """
    if keep.all():
        return
    cluster = np.cumsum(keep) - 1  # a run starts at each hit overlapping nothing
    crowded = np.bincount(cluster)[cluster] > 1
    current, reach = -1, 0
    for i in np.flatnonzero(crowded):
        if cluster[i] != current:
            current, reach = cluster[i], ends[i]  # the run's first hit is kept
        elif starts[i] >= reach:
            keep[i], reach = True, ends[i]


def _mark_own_values(
    notes: pa.Array, own: _OwnValues, counts: Counter[str]
) -> pa.Array:
    """Overwrite each row's own values in its text with their tag's placeholder."""
    hits, slow_rows = _find_own_values(pc.ascii_lower(notes), own)
    hits = _first_non_overlapping(hits)
    offsets, data = _buffers(notes)
    marked = data.copy()
    lengths = hits.ends - hits.starts
    placeholder = np.array([_PLACEHOLDERS[tag] for tag in own.tags], dtype=np.uint8)
    marked[np.repeat(hits.starts, lengths) + _ramp(lengths)] = np.repeat(
        placeholder[own.source_index[hits.needles]], lengths
    )
    result = _text_from(offsets, marked, notes)
    if not slow_rows.size:
        return result
    originals = notes.take(pa.array(slow_rows)).to_pylist()
    changed = [
        _scrub_row(text, needles, own, counts)
        for text, needles in zip(originals, _row_needles(own, slow_rows), strict=True)
    ]
    mask = np.zeros(len(notes), dtype=bool)
    mask[slow_rows] = True
    return pc.replace_with_mask(result, pa.array(mask), pa.array(changed, TEXT))


def _row_needles(own: _OwnValues, rows: Ints) -> list[list[tuple[str, int]]]:
    """(needle, source index) of each of ``rows``, longest needle first."""
    first = np.searchsorted(own.rows, rows, side="left")
    last = np.searchsorted(own.rows, rows, side="right")
    out = []
    for begin, end in zip(first.tolist(), last.tolist(), strict=True):
        index = np.arange(begin, end)
        needles = own.texts(index).to_pylist()
        sources = own.source_index[index].tolist()
        pairs = sorted(zip(needles, sources, strict=True), key=lambda p: -len(p[0]))
        out.append(pairs)
    return out


def _scrub_row(
    text: str | None,
    needles: list[tuple[str, int]],
    own: _OwnValues,
    counts: Counter[str],
) -> str | None:
    for needle, source in needles:
        if text is None:
            break
        tag = own.tags[source]
        text, replaced = replace_words(text, needle, tag)
        counts[tag] += replaced
    return text


def replace_words(text: str, needle: str, tag: str) -> tuple[str, int]:
    """Replace whole-word, case-insensitive occurrences of ``needle`` by ``tag``.

    A word is a run of letters or a run of digits: ``needle`` must not
    continue a run of its first or last character's kind.

    Parameters
    ----------
    text : str
        The text.
    needle : str
        Lowercase text to find.
    tag : str
        The replacement.

    Returns
    -------
    text : str
        The new text.
    count : int
        How many occurrences were replaced.

    """
    pieces: list[str] = []
    start = 0
    for begin, end in _word_spans(text, needle):
        pieces += [text[start:begin], tag]
        start = end
    if not pieces:
        return text, 0
    pieces.append(text[start:])
    return "".join(pieces), len(pieces) // 2


def _word_spans(text: str, needle: str) -> list[tuple[int, int]]:
    # A lookahead sees every occurrence, also one overlapping an earlier
    # match that is not a whole word (which plain finditer would skip);
    # whole-word ones are then taken left to right without overlap.
    found = re.finditer(f"(?=({re.escape(needle)}))", text, re.IGNORECASE)
    spans: list[tuple[int, int]] = []
    for match in found:
        begin, end = match.span(1)
        if (not spans or begin >= spans[-1][1]) and _bounded(text, begin, end):
            spans.append((begin, end))
    return spans


def _char_class(char: str) -> int:
    if char.isalpha():
        return _LETTER
    return _DIGIT if char.isdigit() else _OTHER


def _bounded(text: str, begin: int, end: int) -> bool:
    """Whether ``text[begin:end]`` does not continue a word on either side."""
    first, last = _char_class(text[begin]), _char_class(text[end - 1])
    before = begin == 0 or first == _OTHER or _char_class(text[begin - 1]) != first
    after = end == len(text) or last == _OTHER or _char_class(text[end]) != last
    return before and after


_CONTROL = "[\\x00-\\x03]"


def _mark_free_text(
    notes: pa.Array, own_values: _OwnValues | None, counts: Counter[str]
) -> pa.Array:
    """Neutralise control bytes, then mark each row's own values by placeholders."""
    if pc.any(pc.match_substring_regex(notes, _CONTROL)).as_py():
        notes = pc.replace_substring_regex(notes, _CONTROL, " ")
    if own_values is not None and len(own_values):
        notes = _mark_own_values(notes, own_values, counts)
    return notes
