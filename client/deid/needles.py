"""Each row's own identifier values ("needles"), collected and indexed.

This module owns what a row's free text must not contain besides the
identifier patterns: which identifier columns give needles
(:func:`_is_needle_source`), how their values become needles
(:func:`_own_values`: each word of a name, titles and single letters left
out, or the whole trimmed value of a street address or city), the block's
needles as byte spans of one lowercased buffer (:class:`_OwnValues`), and
their index by row and first 2 bytes (:class:`_NeedleIndex`), built once
per block and shared by the scrub (:mod:`~hospfed.client.deid.names`) and
the residual scan (:mod:`~hospfed.client.deid.residual`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hospfed.client.deid.textbuf import (
    _LETTER,
    _OTHER,
    U8,
    U64,
    Bools,
    Ints,
    _buffers,
    _byte_windows,
    _char_classes,
    _class_edges,
    _heads,
    _is_ascii,
    _per_value,
    _spans_text,
    _words,
)
from hospfed.common.schema import Column

_PATTERN_SHAPED = frozenset(
    (
        "phone",
        "fax",
        "email",
        "ssn",
        "mrn",
        "health_plan",
        "account",
        "url",
        "ip",
        "zip",
    )
)
"""Safe Harbor categories whose values are codes (digits, ``@``, dots), not
words: they are found in text by their shape, so they are not needles."""

_UNKNOWN_TAG = "[ID]"
_OWN_VALUE_TAGS = {"name": "[NAME]", "geographic": "[LOCATION]"}
"""The tag replacing a row's own value of each Safe Harbor category (else ``[ID]``)."""
_PLACEHOLDERS = {"[NAME]": 1, "[LOCATION]": 2, _UNKNOWN_TAG: 3}
"""The placeholder byte of each own-value tag (see :mod:`.names`)."""

_TITLES = "mr mrs ms miss mx dr prof md do dds dmd dvm phd rn np jr sr ii iii iv esq"
"""Words of a name that are not the patient's: titles, degrees and suffixes."""
_MIN_NAME_WORD = 2
_MIN_OWN_VALUE = 3


def _is_needle_source(column: Column) -> bool:
    """Whether a column's values are needles: see :func:`_own_values`."""
    return (
        column.role == "identifier"
        and column.kind == "string"
        and column.phi not in _PATTERN_SHAPED
    )


@dataclass(frozen=True)
class _OwnValues:
    """Each row's own identifier values ("needles"), lowercased, sorted by row.

    The needles are byte spans ``data[starts:ends]`` of one buffer of UTF-8
    text.

    Attributes
    ----------
    row_count : int
        Rows of the block the needles belong to.
    rows : numpy.ndarray
        Row position of each needle, ascending.
    starts, ends : numpy.ndarray
        Each needle's bytes in ``data``.
    first_word : numpy.ndarray
        Length of each needle's first word (0 if it does not start with one
        or is not ASCII: such needles take the per-row path).
    data : numpy.ndarray
        The lowercased text of the identifier columns.
    source_index : numpy.ndarray
        Index into ``sources`` of each needle's column.
    sources : tuple of str
        The raw identifier columns.
    tags : tuple of str
        The tag replacing a needle of each source.

    """

    row_count: int
    rows: Ints
    starts: Ints
    ends: Ints
    first_word: Ints
    data: U8
    source_index: Ints
    sources: tuple[str, ...]
    tags: tuple[str, ...]

    @classmethod
    def empty(cls, row_count: int) -> _OwnValues:
        nothing = np.zeros(0, np.int64)
        no_bytes = np.zeros(0, np.uint8)
        return cls(
            row_count, nothing, nothing, nothing, nothing, no_bytes, nothing, (), ()
        )

    def __len__(self) -> int:
        return len(self.rows)

    def texts(self, index: Ints) -> pa.Array:
        """The needles ``index`` as a string array."""
        return _spans_text(self.data, self.starts[index], self.ends[index])

    def in_rows(self, rows: slice) -> _OwnValues:
        """The needles of ``rows``, renumbered from 0."""
        low, high = np.searchsorted(self.rows, [rows.start, rows.stop])
        part = slice(int(low), int(high))
        return _OwnValues(
            row_count=rows.stop - rows.start,
            rows=self.rows[part] - rows.start,
            starts=self.starts[part],
            ends=self.ends[part],
            first_word=self.first_word[part],
            data=self.data,
            source_index=self.source_index[part],
            sources=self.sources,
            tags=self.tags,
        )

    @cached_property
    def index(self) -> _NeedleIndex:
        """The needles that start with an ASCII word, ready to look for."""
        return _NeedleIndex.of(self)


@dataclass(frozen=True)
class _NeedleIndex:
    """The needles of :attr:`_OwnValues.index`, by row and first 2 bytes.

    Built once per block, for the scrub and for the residual scan.

    Attributes
    ----------
    needles : numpy.ndarray
        Needles (indices into the own values) whose first word is ASCII,
        ordered by ``keys``.
    keys : numpy.ndarray
        ``row << 16 | head`` of each, ascending; a needle's head is its first
        2 bytes (every needle has 2 or more).
    row_bits : numpy.ndarray
        Per row, the bits (:data:`_HEAD_BITS`) of its needles' heads.
    windows : numpy.ndarray
        The needles' text as 8-byte windows (see :func:`_byte_windows`).

    """

    needles: Ints
    keys: Ints
    row_bits: U64
    windows: U64

    @classmethod
    def of(cls, own: _OwnValues) -> _NeedleIndex:
        needles = np.flatnonzero(own.first_word > 0)
        rows = own.rows[needles]
        heads = _heads(own.data, own.starts[needles])
        keys = (rows << 16) | heads.astype(np.int64)
        order = np.argsort(keys, kind="stable")
        row_bits = np.zeros(own.row_count, dtype=np.uint64)
        if needles.size:
            group = np.flatnonzero(np.diff(rows, prepend=-1))
            bits = _HEAD_BITS[heads]
            row_bits[rows[group]] = np.bitwise_or.reduceat(bits, group)
        return cls(needles[order], keys[order], row_bits, _byte_windows(own.data))


def _head_bit_table() -> U64:
    heads = np.arange(1 << 16, dtype=np.int64)
    bit = ((heads * 40503) & 0xFFFF) >> 10  # the top 6 bits of a 16-bit product
    return np.left_shift(np.uint64(1), bit.astype(np.uint64))


_HEAD_BITS = _head_bit_table()
"""One of 64 bits for each 2-byte head (a multiplicative hash)."""


@dataclass(frozen=True)
class _Spans:
    """Needles of one column: rows, byte spans into ``data``, first-word lengths."""

    rows: Ints
    starts: Ints
    ends: Ints
    first_word: Ints
    data: U8


def _own_values(sources: Sequence[tuple[Column, pa.Array]]) -> _OwnValues:
    """Collect the identifier values a row's free text must not contain.

    ``sources`` are identifier columns for which :func:`_is_needle_source`
    holds, with their text. Names contribute each of their words (titles and
    single letters left out); other columns contribute their whole value
    where it holds a letter (a street address, a city). Columns whose values
    have a shape the patterns recognise (phone, email, SSN, ZIP, record and
    account numbers, URL, IP address) are left to the patterns, which catch
    them in any spelling.
    """
    found: list[_Spans] = []
    names: list[str] = []
    tags: list[str] = []
    row_count = len(sources[0][1]) if sources else 0
    for column, values in sources:
        lowered = pc.utf8_lower(values)
        spans = _name_words(lowered) if column.phi == "name" else _whole_values(lowered)
        if len(spans.rows):
            found.append(spans)
            names.append(column.name)
            tags.append(_OWN_VALUE_TAGS.get(column.phi or "", _UNKNOWN_TAG))
    if not found:
        return _OwnValues.empty(row_count)
    bases = np.cumsum([0] + [f.data.size for f in found])[:-1]
    rows = np.concatenate([f.rows for f in found])
    order = np.argsort(rows, kind="stable")

    def joined(field: str, base: bool) -> Ints:
        parts = [
            getattr(f, field) + (b if base else 0)
            for f, b in zip(found, bases, strict=True)
        ]
        return np.concatenate(parts)[order]

    source = np.repeat(np.arange(len(found)), [len(f.rows) for f in found])
    return _OwnValues(
        row_count=row_count,
        rows=rows[order],
        starts=joined("starts", base=True),
        ends=joined("ends", base=True),
        first_word=joined("first_word", base=False),
        data=np.concatenate([f.data for f in found]),
        source_index=source[order],
        sources=tuple(names),
        tags=tuple(tags),
    )


def _name_words(lowered: pa.Array) -> _Spans:
    """Each word of each name (non-ASCII characters count as letters)."""
    offsets, data = _buffers(lowered)
    starts, ends, rows = _words(_char_classes(data, non_ascii=_LETTER), offsets)
    keep = (ends - starts >= _MIN_NAME_WORD) & ~_is_title(data, starts, ends)
    first_word = np.where(_is_ascii(lowered)[rows], ends - starts, 0)
    return _Spans(rows[keep], starts[keep], ends[keep], first_word[keep], data)


def _is_title(data: U8, starts: Ints, ends: Ints) -> Bools:
    """Whether each word is a title or suffix such as ``dr`` or ``jr``."""
    return np.isin(_short_word_codes(data, starts, ends), _TITLE_CODES)


def _short_word_codes(data: U8, starts: Ints, ends: Ints) -> Ints:
    """Pack words of up to 4 bytes into one integer (-1 for longer words)."""
    lengths = ends - starts
    if not data.size:
        return np.full(starts.size, -1, dtype=np.int64)
    code = np.zeros(starts.size, dtype=np.int64)
    for offset in range(4):
        byte = data[np.minimum(starts + offset, data.size - 1)].astype(np.int64)
        code |= np.where(lengths > offset, byte, 0) << (8 * offset)
    return np.where(lengths <= 4, code, -1)


_TITLE_WORDS = _TITLES.split()
_TITLE_CODES = _short_word_codes(
    np.frombuffer("".join(_TITLE_WORDS).encode(), np.uint8),
    np.cumsum([0] + [len(t) for t in _TITLE_WORDS])[:-1],
    np.cumsum([len(t) for t in _TITLE_WORDS]),
)


def _whole_values(lowered: pa.Array) -> _Spans:
    """Whole values (trimmed) of 3 characters or more that hold a letter."""
    offsets, data = _buffers(pc.utf8_trim_whitespace(lowered))
    classes = _char_classes(data)
    non_ascii = (data >= 0x80).view(np.uint8)
    flags = (classes == _LETTER).view(np.uint8) | (non_ascii << np.uint8(1))
    seen = _per_value(np.bitwise_or, flags, offsets)  # 1: a letter, 2: not ASCII
    rows = np.flatnonzero((np.diff(offsets) >= _MIN_OWN_VALUE) & (seen != 0))
    starts, ends = offsets[rows], offsets[rows + 1]
    edge, _ = _class_edges(classes, offsets)
    bounds = np.flatnonzero(edge)
    word_end = bounds[np.searchsorted(bounds, starts, side="right")]
    starts_word = (classes[starts] != _OTHER) & ((seen[rows] & 2) == 0)
    first_word = np.where(starts_word, word_end - starts, 0)
    return _Spans(rows.astype(np.int64), starts, ends, first_word, data)
