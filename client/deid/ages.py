"""Ages over 89: the dates that would reveal one are moved into the "90+" band.

Safe Harbor removes "all ages over 89 and all elements of dates (including
year) indicative of such age". Capping the age column at 90 is not enough
when the year of birth and the year of admission are kept: 2015 - 1922
reads back 93. This module owns the rule that closes that gap
(:func:`age_band_dates`), applied to every date a schema keeps (as a year
or shifted):

- a row's *reference year* is the latest of its kept dates' years, and, if
  the schema caps an age column, its earliest kept date's year plus its
  largest raw age (so a birth year kept alone is placed in time too);
- in a row, every kept date more than 90 years before the reference year is
  moved to exactly 90 years before it (its month and day kept for a shifted
  date): the row then reads "90 or older", as the capped age does.

Nothing is suppressed, so a contract's columns keep their types and
fingerprints; only the years that gave the age away move.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from hospfed.common.schema import AGE_CAP, DatasetSchema, parse_dates

__all__ = ["age_band_dates", "band_reference_years"]

_BAND = AGE_CAP
"""A row's kept dates lie at most this many years before its reference year."""

_KEPT_DATE_ACTIONS = ("year", "shift")


def band_reference_years(frame: pd.DataFrame, schema: DatasetSchema) -> np.ndarray:
    """Each row's reference year (NaN if it keeps no date): see the module.

    Parameters
    ----------
    frame : pandas.DataFrame
        The raw export.
    schema : DatasetSchema
        Its raw contract.

    Returns
    -------
    numpy.ndarray
        Float years, one per row.

    """
    years = _raw_years(frame, schema)
    rows = len(frame)
    if not years:
        return np.full(rows, np.nan)
    stacked = np.vstack(list(years.values()))
    with np.errstate(all="ignore"):
        latest = _nan_reduce(np.fmax, stacked)
        earliest = _nan_reduce(np.fmin, stacked)
    ages = [
        frame[c.name].to_numpy(dtype=np.float64, na_value=np.nan)
        for c in schema.columns
        if c.action == "age_cap"
    ]
    if ages:
        oldest = _nan_reduce(np.fmax, np.vstack(ages))
        latest = np.fmax(latest, earliest + oldest)
    return latest


def _nan_reduce(ufunc: np.ufunc, stacked: np.ndarray) -> np.ndarray:
    result: np.ndarray = ufunc.reduce(stacked, axis=0)
    return result


def _raw_years(frame: pd.DataFrame, schema: DatasetSchema) -> dict[str, np.ndarray]:
    return {
        c.name: parse_dates(frame[c.name], c.effective_date_format).dt.year.to_numpy(
            dtype=np.float64, na_value=np.nan
        )
        for c in schema.columns
        if c.kind == "date" and c.action in _KEPT_DATE_ACTIONS
    }


def age_band_dates(
    columns: Mapping[str, pd.Series], reference: np.ndarray, schema: DatasetSchema
) -> tuple[dict[str, pd.Series], int]:
    """Move the kept dates that reveal an age over 89 into the "90+" band.

    Parameters
    ----------
    columns : mapping of str to pandas.Series
        The de-identified date columns: years (``Int64``) or shifted dates.
    reference : numpy.ndarray
        :func:`band_reference_years` of the raw rows.
    schema : DatasetSchema
        The raw contract (which columns are kept dates).

    Returns
    -------
    columns : dict of str to pandas.Series
        The same columns, those that changed replaced.
    moved : int
        How many date values were moved.

    """
    out = dict(columns)
    floor = reference - _BAND
    moved = 0
    for column in schema.columns:
        if column.name not in out or column.action not in _KEPT_DATE_ACTIONS:
            continue
        values = out[column.name]
        if column.action == "year":
            years = values.to_numpy(dtype=np.float64, na_value=np.nan)
            early = np.nan_to_num(years < floor, nan=False).astype(bool)
            if early.any():
                moved += int(early.sum())
                raised = values.copy()
                raised[early] = floor[early].astype(np.int64)
                out[column.name] = raised
        else:
            years = values.dt.year.to_numpy(dtype=np.float64, na_value=np.nan)
            early = np.nan_to_num(years < floor, nan=False).astype(bool)
            if early.any():
                moved += int(early.sum())
                out[column.name] = _with_years(values, early, floor)
    return out, moved


def _with_years(dates: pd.Series, rows: np.ndarray, years: np.ndarray) -> pd.Series:
    changed = dates.copy()
    for position in np.flatnonzero(rows):
        day = dates.iloc[position]
        year = int(years[position])
        changed.iloc[position] = day.replace(year=year, day=min(day.day, 28))
    return changed
