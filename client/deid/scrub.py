"""Scrubbing kept free text: normalise, cut into chunks, keep only what is safe.

This module owns :func:`scrub_free_text` and the block step the pipeline
runs (:func:`_scrub_block`): the text is normalised
(:func:`~hospfed.client.deid.textnorm.normalise_text`), cut into chunks at
spaces (:mod:`.chunks`), each chunk kept or replaced by a tag by the
allowlist rules (:mod:`.allowlist`), the row's own identifier words
(:class:`OwnWords`: the words of the patient's name, street and city)
removed wherever they stand, and the chunks joined back with single
spaces. Each tag keeps the punctuation around the chunk it replaces
("(MRN [ID])."). Counts of replacements per tag come back with the text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hospfed.client.deid.allowlist import decide
from hospfed.client.deid.blocks import _in_parallel, _row_blocks
from hospfed.client.deid.chunks import _TRIM, Chunks, read_chunks
from hospfed.client.deid.lexicon import SAFE, lexicon
from hospfed.client.deid.tags import T_LOCATION, T_NAME, TAGS
from hospfed.client.deid.textbuf import (
    TEXT,
    Ints,
    _buffers,
    _concat_spans,
    _plain,
)
from hospfed.client.deid.textnorm import normalise_text
from hospfed.common.schema import Column

_NOT_OWN = frozenset(
    (  # noqa: SIM905 (a word list)
        "mr mrs ms miss mx dr prof md do dds phd rn np jr sr ii iii iv esq apt "
        "suite unit street st avenue ave road rd lane ln drive court ct boulevard "
        "blvd way place pl the of and"
    ).split()
)
"""Words of identifier values that are not the patient's own."""


@dataclass(frozen=True)
class OwnWords:
    """Each row's own identifier words that the allowlist alone would keep.

    Only words on the safe vocabulary ("Will", "Rose", "Long", a street
    name "Elm") and numbers matter: any other word of a name or place is
    removed anyway.

    Attributes
    ----------
    rows : numpy.ndarray
        Row of each word, ascending.
    words : pyarrow.Array
        The words, lowercase.
    tags : numpy.ndarray
        The tag code each takes (:data:`~.allowlist.TAGS`).

    """

    rows: Ints
    words: pa.Array
    tags: np.ndarray

    @classmethod
    def of(cls, sources: Sequence[tuple[Column, pa.Array]]) -> OwnWords:
        """The own words of a block, from its identifier columns' values."""
        rows, words, tags = [], [], []
        for column, values in sources:
            lowered = pc.utf8_lower(normalise_text(values))
            parts = pc.split_pattern_regex(lowered, r"[^\pL\pN]+")
            flat = pc.list_flatten(parts)
            owner = pc.list_parent_indices(parts).to_numpy(zero_copy_only=False)
            encoded = pc.dictionary_encode(flat)  # names repeat their words
            kind = encoded.indices.to_numpy(zero_copy_only=False)
            useful = _useful(encoded.dictionary)[kind]
            rows.append(np.asarray(owner)[useful])
            words.append(flat.filter(pa.array(useful)))
            tag = T_LOCATION if column.phi == "geographic" else T_NAME
            tags.append(np.full(int(useful.sum()), tag, dtype=np.uint8))
        if not rows:
            return cls(np.zeros(0, np.int64), pa.array([], TEXT), np.zeros(0, np.uint8))
        order = np.argsort(np.concatenate(rows), kind="stable")
        joined = pa.concat_arrays([w.cast(TEXT) for w in words]).take(pa.array(order))
        return cls(
            np.concatenate(rows)[order].astype(np.int64),
            joined,
            np.concatenate(tags)[order],
        )

    def in_rows(self, rows: slice) -> OwnWords:
        """The words of ``rows`` only, renumbered from 0."""
        first, last = np.searchsorted(self.rows, [rows.start, rows.stop])
        return OwnWords(
            self.rows[first:last] - rows.start,
            self.words.slice(first, last - first),
            self.tags[first:last],
        )

    def marks(self, chunks: Chunks) -> np.ndarray | None:
        """The tag of each chunk that is one of its row's own words (else 0)."""
        if not len(self.rows):
            return None
        distinct = pc.unique(self.words)
        found_word = pc.fill_null(pc.index_in(chunks.words, value_set=distinct), -1)
        found = np.asarray(found_word.to_numpy(zero_copy_only=False))[chunks.kind]
        where = np.flatnonzero(found >= 0)
        if not where.size:
            return None
        size = len(distinct)
        index = pc.index_in(self.words, value_set=distinct).to_numpy(
            zero_copy_only=False
        )
        own_keys = self.rows * size + np.asarray(index, dtype=np.int64)
        keys = chunks.rows[where] * size + found[where].astype(np.int64)
        # Stable: a word that is both a name and a place word of its row takes
        # the tag of its first column, whatever the size of the block.
        order = np.argsort(own_keys, kind="stable")
        slot = np.searchsorted(own_keys[order], keys)
        slot = np.minimum(slot, len(order) - 1)
        mine = own_keys[order][slot] == keys
        marks = np.zeros(len(chunks), dtype=np.uint8)
        marks[where[mine]] = self.tags[order][slot[mine]]
        return marks


_NOT_OWN_WORDS = pa.array(sorted(_NOT_OWN), TEXT)


def _useful(words: pa.Array) -> np.ndarray:
    """Which words of identifier values matter (see :class:`OwnWords`)."""
    length = pc.utf8_length(words).to_numpy(zero_copy_only=False)
    useful = np.asarray(length >= 2)
    classes = lexicon().classes(words)
    digits = pc.ascii_is_decimal(words).to_numpy(zero_copy_only=False)
    useful &= ((classes & SAFE) != 0) | np.asarray(digits, dtype=bool)
    useful &= ~np.asarray(
        pc.is_in(words, value_set=_NOT_OWN_WORDS).to_numpy(zero_copy_only=False)
    )
    return useful


def scrub_free_text(
    notes: pa.Array | pa.ChunkedArray, own_words: OwnWords | None = None
) -> tuple[pa.Array, Counter[str]]:
    """Keep only safe words and clinical measurements of free text.

    A chunk of text (what stands between spaces) is kept only if it is a
    safe word on no name or place list, a kept number shape or punctuation,
    and no rule over its neighbours removes it (:mod:`.allowlist`);
    anything else becomes its tag (``[NAME]``, ``[LOCATION]``, ``[DATE]``,
    ``[AGE>89]``, ``[PHONE]``, ``[EMAIL]``, ``[URL]``, ``[IP]``, ``[SSN]``,
    ``[ID]``, ``[REDACTED]``). The text is normalised first (Unicode NFKC,
    invisible characters removed, all spaces and dashes made plain) and
    comes back as its chunks joined by single spaces.

    Parameters
    ----------
    notes : pyarrow.Array
        The free text, one value per row.
    own_words : OwnWords, optional
        The rows' own identifier words, removed wherever they stand.

    Returns
    -------
    notes : pyarrow.Array
        The scrubbed text (missing values stay missing).
    counts : collections.Counter
        Replacements per tag.

    """
    notes = _plain(notes)

    def scrub(rows: slice) -> tuple[pa.Array, Counter[str]]:
        own = None if own_words is None else own_words.in_rows(rows)
        return _scrub_block(notes.slice(rows.start, rows.stop - rows.start), own)

    done = _in_parallel([partial(scrub, rows) for rows in _row_blocks(len(notes))])
    counts: Counter[str] = Counter()
    for _, block_counts in done:
        counts.update(block_counts)
    texts = [text for text, _ in done]
    return (texts[0] if len(texts) == 1 else pa.concat_arrays(texts)), counts


def _scrub_block(
    notes: pa.Array, own_words: OwnWords | None
) -> tuple[pa.Array, Counter[str]]:
    """Scrub one block of rows (see :func:`scrub_free_text`)."""
    text = normalise_text(notes)
    chunks = read_chunks(text)
    marks = None if own_words is None else own_words.marks(chunks)
    tags = decide(chunks, marks)
    counts: Counter[str] = Counter()
    for code, number in enumerate(np.bincount(tags, minlength=len(TAGS))):
        if code and number:
            counts[TAGS[code]] += int(number)
    return _joined(text, chunks, tags), counts


_TAG_BYTES = np.frombuffer("".join(TAGS).encode("ascii"), dtype=np.uint8)
_TAG_LENGTHS = np.array([len(tag) for tag in TAGS], dtype=np.int64)
_TAG_STARTS = np.cumsum(_TAG_LENGTHS) - _TAG_LENGTHS


def _joined(text: pa.Array, chunks: Chunks, tags: np.ndarray) -> pa.Array:
    """Each row's chunks joined by single spaces, each tagged one by its tag.

    A tagged chunk keeps the punctuation around it ("(MRN [ID])."). Each
    distinct (chunk, tag) pair is written once (:func:`_tagged_pieces`);
    the rows are then Arrow takes and one join.
    """
    piece = chunks.kind.copy()
    tagged = np.flatnonzero(tags)
    table = chunks.texts
    if tagged.size:
        pairs = chunks.kind[tagged] * len(TAGS) + tags[tagged]
        distinct, inverse = np.unique(pairs, return_inverse=True)
        kinds, codes = np.divmod(distinct, len(TAGS))
        made = _tagged_pieces(chunks, kinds, codes)
        table = pa.concat_arrays([chunks.texts, made])
        piece[tagged] = len(chunks.texts) + inverse
    offsets = np.zeros(len(text) + 1, dtype=np.int64)
    np.cumsum(chunks.per_row, out=offsets[1:])
    lists = pa.LargeListArray.from_arrays(
        pa.array(offsets), table.take(pa.array(piece)), mask=pc.is_null(text)
    )
    return pc.binary_join(lists, pa.scalar(" ", TEXT))


def _tagged_pieces(chunks: Chunks, kinds: Ints, codes: Ints) -> pa.Array:
    """Distinct chunks ``kinds`` with their core replaced by the tag ``codes``.

    The bytes are gathered with NumPy: the punctuation before the core, the
    tag, the punctuation after (Arrow would need a regex, a split and an
    element-wise join for the same).
    """
    offsets, data = _buffers(chunks.texts)
    start, length = offsets[kinds], offsets[kinds + 1] - offsets[kinds]
    lead, tail = _around(chunks.texts.take(pa.array(kinds)))
    source = np.concatenate([data, _TAG_BYTES])
    spans = np.empty((kinds.size, 3, 2), dtype=np.int64)
    spans[:, 0, 0], spans[:, 0, 1] = start, lead
    spans[:, 1, 0], spans[:, 1, 1] = data.size + _TAG_STARTS[codes], _TAG_LENGTHS[codes]
    spans[:, 2, 0], spans[:, 2, 1] = start + length - tail, tail
    out = _concat_spans(source, spans[:, :, 0].ravel(), spans[:, :, 1].ravel())
    ends = np.zeros(kinds.size + 1, dtype=np.int64)
    np.cumsum(spans[:, :, 1].sum(axis=1), out=ends[1:])
    return pa.LargeStringArray.from_buffers(
        kinds.size, pa.py_buffer(ends), pa.py_buffer(out)
    )


def _around(texts: pa.Array) -> tuple[Ints, Ints]:
    """Bytes of punctuation before and after the core of each of ``texts``.

    A chunk of punctuation only is all "before".
    """
    opened = pc.utf8_ltrim(texts, _TRIM)
    width = _lengths(opened)
    return _lengths(texts) - width, width - _lengths(pc.utf8_rtrim(opened, _TRIM))


def _lengths(values: pa.Array) -> Ints:
    return np.asarray(
        pc.binary_length(values).to_numpy(zero_copy_only=False), dtype=np.int64
    )
