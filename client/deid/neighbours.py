"""Neighbours within a row of chunks, and per-chunk reads done once per word.

This module owns the vectorised machinery the allowlist rules
(:mod:`.allowlist`) are written in: :class:`_Rows` (a per-chunk array
shifted by a few chunks, never across rows), :func:`_run_ids` (runs of
consecutive chunks), :func:`_among` (membership of small codes by table)
and :func:`_all_words` / :func:`_all_texts` (an Arrow kernel run on each
distinct chunk once and spread to every chunk).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from hospfed.client.deid.chunks import Chunks
from hospfed.client.deid.tags import U8, _np_bools
from hospfed.client.deid.textbuf import Bools, Ints

_A = TypeVar("_A", bound=npt.NDArray[Any])


class _Rows:
    """Neighbours within a row: per-chunk arrays shifted by a few chunks.

    A chunk's neighbour in another row counts as 0 (False).
    """

    def __init__(self, rows: Ints) -> None:
        self.rows = rows
        self._same: dict[int, Bools] = {}

    def _same_row(self, by: int) -> Bools:
        """Whether chunk ``i + by`` is in the row of chunk ``i`` (made once)."""
        same = self._same.get(by)
        if same is None:
            same = self._same[by] = self.rows[by:] == self.rows[:-by]
        return same

    def prev(self, values: _A, by: int = 1) -> _A:
        """At each chunk, ``values`` of the chunk ``by`` before it."""
        out = np.zeros_like(values)
        if 0 < by < len(values):
            np.multiply(values[:-by], self._same_row(by), out=out[by:])
        return cast(_A, out)

    def next(self, values: _A, by: int = 1) -> _A:
        """At each chunk, ``values`` of the chunk ``by`` after it."""
        if by == 0:
            return values
        out = np.zeros_like(values)
        if by < len(values):
            np.multiply(values[by:], self._same_row(by), out=out[:-by])
        return cast(_A, out)


def _among(codes: U8, members: tuple[int, ...]) -> Bools:
    """Whether each of ``codes`` (shapes or tags) is one of ``members``.

    A lookup table: ``np.isin`` sorts or loops for every call.
    """
    table = np.zeros(256, dtype=bool)
    table[list(members)] = True
    return table[codes]


def _run_ids(member: Bools, near: _Rows) -> Ints:
    """An id per run of consecutive members within a row (0 outside runs)."""
    previous = near.prev(member)
    start = member & ~previous
    ids = np.cumsum(start)
    return np.where(member, ids, 0).astype(np.int64)


def _all_words(chunks: Chunks, read: Callable[[pa.Array], pa.Array]) -> Bools:
    """``read`` (a boolean kernel) of every chunk's word, read once per word."""
    return _np_bools(read(chunks.words))[chunks.kind]


def _all_texts(chunks: Chunks, read: Callable[[pa.Array], pa.Array]) -> Bools:
    """``read`` (a boolean kernel) of every chunk as written, read once per chunk."""
    return _np_bools(read(chunks.texts))[chunks.kind]
