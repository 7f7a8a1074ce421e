"""Helpers over the Arrow byte buffers of text: the vectorised text toolkit.

This module owns the low-level NumPy view of a ``large_string`` array that
the own-value matcher (:mod:`~hospfed.client.deid.needles`,
:mod:`~hospfed.client.deid.names`), the pattern classifier
(:mod:`~hospfed.client.deid.patterns`) and the residual scan
(:mod:`~hospfed.client.deid.residual`) share: the array types, getting a
plain array's offsets and UTF-8 bytes and building arrays back from them,
byte classes (ASCII letter, digit, other) and the words they make,
per-value reductions, and fast comparison of byte spans 8 bytes at a time.
It knows nothing about identifiers.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

Ints = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]
Bools = npt.NDArray[np.bool_]
TEXT = pa.large_string()

_OTHER, _LETTER, _DIGIT = 0, 1, 2
"""Byte classes: neither a letter nor a digit, an ASCII letter, a digit."""


def _plain(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One ``large_string`` array (no copy of the bytes if there is one chunk)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.chunk(0) if array.num_chunks == 1 else array.combine_chunks()
    return array.cast(TEXT)


def _buffers(array: pa.Array) -> tuple[Ints, U8]:
    """Offsets (starting at 0) and UTF-8 bytes of a ``large_string`` array."""
    _, offsets_buffer, data_buffer = array.buffers()
    if offsets_buffer is None:  # an empty array may have no buffers at all
        return np.zeros(len(array) + 1, np.int64), np.zeros(0, np.uint8)
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[
        array.offset : array.offset + len(array) + 1
    ]
    if data_buffer is None or not len(offsets):
        return np.zeros(len(array) + 1, np.int64), np.zeros(0, np.uint8)
    data = np.frombuffer(data_buffer, dtype=np.uint8)
    return offsets - offsets[0], data[offsets[0] : offsets[-1]]


def _text_from(offsets: Ints, data: U8, like: pa.Array) -> pa.Array:
    """A string array of ``data`` cut at ``offsets``, with the nulls of ``like``."""
    text = pa.LargeStringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data)
    )
    if like.null_count:
        text = pc.if_else(like.is_valid(), text, pa.scalar(None, TEXT))
    return text


def _is_ascii(array: pa.Array) -> Bools:
    """Whether each value of a string array is ASCII (a missing one counts)."""
    ascii_values: Bools = pc.fill_null(pc.string_is_ascii(array), True).to_numpy(
        zero_copy_only=False
    )
    return ascii_values


def _spans_text(data: U8, starts: Ints, ends: Ints) -> pa.Array:
    """The byte spans ``[starts, ends)`` of ``data`` as a string array."""
    lengths = ends - starts
    picked = data[np.repeat(starts, lengths) + _ramp(lengths)]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return pa.LargeStringArray.from_buffers(
        len(starts), pa.py_buffer(offsets), pa.py_buffer(picked)
    )


def _concat_spans(data: U8, starts: Ints, lengths: Ints) -> U8:
    """The byte spans ``data[s:s+n]`` for each (s, n), one after another.

    NumPy has no "concatenate slices" and Arrow none over a byte buffer, so
    the gather index is built as running sums: 1 within a span, a jump at
    each span's first byte. It takes one index per output byte (32 bits
    where ``data`` is small enough), not three as ``_ramp`` would.
    """
    keep = lengths > 0
    starts, lengths = starts[keep], lengths[keep]
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, np.uint8)
    index_type = np.int32 if data.size < 2**31 else np.int64
    steps = np.ones(total, dtype=index_type)
    firsts = np.cumsum(lengths) - lengths
    steps[0] = starts[0]
    steps[firsts[1:]] = starts[1:] - (starts[:-1] + lengths[:-1]) + 1
    gathered: U8 = data[np.cumsum(steps, out=steps)]
    return gathered


def _ramp(lengths: Ints) -> Ints:
    """``0..n-1`` for each ``n`` in ``lengths``, concatenated."""
    total = int(lengths.sum())
    return np.arange(total, dtype=np.int64) - np.repeat(
        np.cumsum(lengths) - lengths, lengths
    )


def _char_classes(data: U8, *, non_ascii: int = _OTHER) -> U8:
    """Class of each byte: 1 an ASCII letter, 2 a digit, else ``non_ascii`` or 0."""
    letter = ((data | 0x20) - np.uint8(ord("a")) < 26).view(np.uint8)
    digit = (data - np.uint8(ord("0")) < 10).view(np.uint8)
    classes = np.bitwise_or(letter, np.left_shift(digit, 1), dtype=np.uint8)
    if non_ascii != _OTHER:
        non_ascii_bytes = (data >= 0x80).view(np.uint8) * np.uint8(non_ascii)
        classes = np.bitwise_or(classes, non_ascii_bytes, dtype=np.uint8)
    return classes


def _per_value(ufunc: np.ufunc, flags: U8, offsets: Ints) -> U8:
    """``ufunc`` over the bytes of each value of a string array (0 if empty)."""
    result = np.zeros(len(offsets) - 1, dtype=flags.dtype)
    filled = offsets[1:] > offsets[:-1]
    if flags.size:
        result[filled] = ufunc.reduceat(flags, offsets[:-1][filled])
    return result


def _words(classes: U8, offsets: Ints) -> tuple[Ints, Ints, Ints]:
    """Start, end and row of every word (a run of bytes of one class).

    ``offsets`` delimit the rows in ``classes`` (from 0); no word crosses a
    row's end.
    """
    edge, in_word = _class_edges(classes, offsets)
    starts = np.flatnonzero(edge[:-1] & in_word)
    ends = np.flatnonzero(edge[1:] & in_word) + 1
    return starts, ends, _row_of(starts, offsets).astype(np.int64)


def _word_starts(classes: U8, offsets: Ints) -> Ints:
    """Where each word starts."""
    edge, in_word = _class_edges(classes, offsets)
    return np.flatnonzero(edge[:-1] & in_word)


def _class_edges(classes: U8, offsets: Ints) -> tuple[Bools, Bools]:
    """Where the class changes or a row starts (one more than bytes), and words."""
    size = classes.size
    edge = np.ones(size + 1, dtype=bool)
    np.not_equal(classes[1:], classes[:-1], out=edge[1:size])
    edge[offsets] = True
    return edge, classes != _OTHER


def _row_of(positions: Ints, offsets: Ints) -> npt.NDArray[np.int32]:
    """The row of each of the ascending byte ``positions``."""
    per_row = np.diff(np.searchsorted(positions, offsets))
    return np.repeat(np.arange(len(offsets) - 1, dtype=np.int32), per_row)


def _heads(data: U8, positions: Ints) -> npt.NDArray[np.uint16]:
    """The 2 bytes from each of ``positions`` as one number (its head).

    Past the end of ``data`` a byte counts as 0.
    """
    padded = np.zeros(data.size + 1, dtype=np.uint8)
    padded[: data.size] = data
    first = padded[positions].astype(np.uint16) << np.uint16(8)
    second = padded[positions + 1].astype(np.uint16)
    heads: npt.NDArray[np.uint16] = first | second
    return heads


_LOW_BYTES = np.array(
    [(1 << (8 * n)) - 1 for n in range(8)] + [(1 << 64) - 1], dtype=np.uint64
)
"""``_LOW_BYTES[n]`` keeps the first ``n`` bytes of a little-endian 8-byte word."""


def _same_bytes(
    windows: U64, starts: Ints, other_windows: U64, other_starts: Ints, lengths: Ints
) -> Bools:
    """Whether ``data[s:s+n] == other[t:t+n]`` for each (s, t, n), 8 bytes at a time.

    ``windows`` and ``other_windows`` are :func:`_byte_windows` of the two
    buffers; every span must lie inside its buffer.
    """
    same = np.ones(starts.size, dtype=bool)
    pending = np.flatnonzero(lengths > 0)
    offset = 0
    while pending.size:
        left = np.minimum(lengths[pending] - offset, 8)
        differ = (
            windows[starts[pending] + offset]
            ^ other_windows[other_starts[pending] + offset]
        ) & _LOW_BYTES[left]
        equal = differ == 0
        same[pending[~equal]] = False
        offset += 8
        pending = pending[equal & (lengths[pending] > offset)]
    return same


def _byte_windows(data: U8) -> U64:
    """The 8 bytes from each position of ``data`` as one little-endian integer."""
    padded = np.zeros(data.size + 8, dtype=np.uint8)
    padded[: data.size] = data
    windows: U64 = np.ndarray(
        (data.size,), dtype=np.dtype("<u8"), buffer=padded, strides=(1,)
    )
    return windows
