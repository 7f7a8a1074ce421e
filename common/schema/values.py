"""Reading a column's values as the contract's types: text and dates.

Both the contract check (:meth:`Column.validate`) and de-identification read
values this way, so a date that validates is the date de-identification
shifts or reduces to its year.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["is_text", "parse_dates", "text_array", "without_missing"]


def without_missing(values: pd.Series, missing_count: int) -> pd.Series:
    """``values`` without missing ones, copied only where that changes its type."""
    if missing_count and values.dtype == object:
        return values.dropna()
    return values


def is_text(values: pd.Series) -> bool:
    """Return whether every present value of ``values`` is text."""
    if isinstance(values.dtype, pd.StringDtype):
        return True
    if isinstance(values.dtype, pd.ArrowDtype):
        arrow_type = values.dtype.pyarrow_dtype
        return bool(
            pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
        )
    if values.dtype != object:
        return False
    return bool(
        values.empty or pd.api.types.infer_dtype(values, skipna=True) == "string"
    )


def text_array(values: pd.Series) -> pa.Array:
    """Return text values as one Arrow string array (no copy if Arrow-backed).

    Arrow-backed values in several chunks are joined into one array (a copy).
    """
    array = pa.array(values, from_pandas=True)
    if isinstance(array, pa.ChunkedArray):
        array = array.chunk(0) if array.num_chunks == 1 else array.combine_chunks()
    if pa.types.is_null(array.type):
        array = array.cast(pa.string())
    return array


def parse_dates(values: pd.Series, date_format: str) -> pd.Series:
    """Parse dates written in ``date_format``; what does not parse is ``NaT``.

    Each distinct text is parsed once, so a column of a million dates of a
    few thousand distinct days costs a few thousand parses.

    Parameters
    ----------
    values : pandas.Series
        Dates as text (missing values allowed), or already ``datetime64``.
    date_format : str
        A ``strptime`` format, e.g. ``"%Y-%m-%d"``.

    Returns
    -------
    pandas.Series
        ``datetime64[ns]`` values with the same index.

    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values
    codes, uniques = pd.factorize(values)
    parsed = pd.to_datetime(
        pd.Index(np.asarray(uniques, dtype=object)),
        format=date_format,
        errors="coerce",
    )
    days = np.asarray(parsed, dtype="datetime64[ns]")
    result = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[ns]")
    known = codes >= 0
    result[known] = days[codes[known]]
    return pd.Series(result, index=values.index, name=values.name)
