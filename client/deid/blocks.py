"""Text columns as Arrow, in blocks of rows, on worker threads.

This module owns the machinery that keeps de-identification's memory peak
small and its cores busy: a column's rows are cut into blocks of
:data:`_ROWS_PER_BLOCK` (:func:`_row_blocks`, :func:`_text_rows`), a text
column becomes Arrow chunks without a copy where it can
(:func:`_text_chunks`), long arrays are halved for two threads
(:func:`_halves`), and tasks run on at most :data:`_WORKERS` threads
(:func:`_in_parallel`; Arrow's kernels and most NumPy work drop the GIL).
The pipeline, the scrub and the residual scan all go through it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pandas as pd
import pyarrow as pa

from hospfed.client.deid.textbuf import TEXT, _plain

_T = TypeVar("_T")

_ROWS_PER_BLOCK = 1 << 16
_WORKERS = max(1, min(4, pa.cpu_count()))
_MIN_PARALLEL_ROWS = 1 << 16


def _row_blocks(rows: int) -> list[slice]:
    """The rows in blocks of :data:`_ROWS_PER_BLOCK` (one empty block if none)."""
    return [
        slice(first, min(first + _ROWS_PER_BLOCK, rows))
        for first in range(0, max(rows, 1), _ROWS_PER_BLOCK)
    ]


def _in_parallel(tasks: Sequence[Callable[[], _T]]) -> list[_T]:
    """Run ``tasks`` on worker threads (Arrow and most NumPy work drop the GIL)."""
    if len(tasks) < 2:
        return [task() for task in tasks]
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        return list(pool.map(lambda task: task(), tasks))


def _halves(array: pa.ChunkedArray) -> list[pa.ChunkedArray]:
    """The array in two halves, if it is long enough to be worth it."""
    middle = len(array) // 2
    if middle < _MIN_PARALLEL_ROWS:
        return [array]
    return [array.slice(0, middle), array.slice(middle)]


def _text_chunks(values: pd.Series) -> pa.ChunkedArray:
    """A text column as Arrow chunks, without a copy if it is Arrow-backed."""
    array = pa.array(values, from_pandas=True)
    chunks = array if isinstance(array, pa.ChunkedArray) else pa.chunked_array([array])
    if pa.types.is_null(chunks.type):
        return chunks.cast(TEXT)
    return chunks


def _text_rows(values: pa.ChunkedArray, rows: slice) -> pa.Array:
    """Rows ``rows`` of a text column as one ``large_string`` array."""
    return _plain(values.slice(rows.start, rows.stop - rows.start))
