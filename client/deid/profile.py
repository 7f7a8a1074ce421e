"""Profiling kept columns at prepare time: a kept column must not be an identifier.

A schema says what each column is, but a schema can be wrong: a ZIP code,
an SSN or a ``yyyymmdd`` date declared as a numeric feature, a full name in
a kept text column. This module owns the check that does not trust the
schema: every column kept as it is (``deid = "keep"``, not a pseudonym) is
profiled on the data, and :func:`profile_kept_columns` refuses one that

- holds one distinct value per row (20 rows or more; for numbers, only
  whole numbers count: measurements with decimals are naturally distinct),
- holds values shaped like SSNs or other long numbers (7 to 9 digits),
  phone numbers (10 digits, or 11 from a 1), ZIP codes (all values below
  100000, most with 5 digits), or ``yyyymmdd`` dates (most values), or
- is named like an age and holds values over 89,

unless the column says ``reviewed = "why it is not an identifier"``, a
reason the report repeats. The messages name the column and the shape,
never a value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow.compute as pc

from hospfed.common.errors import IdentifierLeakError
from hospfed.common.schema import Column, DatasetSchema, text_array

__all__ = ["ColumnProfile", "profile_kept_columns"]

MIN_ROWS_FOR_UNIQUENESS = 20
"""Below this many values, one distinct value per row says nothing."""

_MAJORITY = 0.5
_AGE_NAME = re.compile(r"(?i)(?:^|[^a-z])age(?:[^a-z]|$)|years?_?old|^age")
_Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ColumnProfile:
    """What profiling found in one kept column (never a value).

    Attributes
    ----------
    column : str
        The column.
    findings : tuple of str
        The identifier shapes it has (``"one value per row"``, ``"ZIP
        codes"``, ...); empty if none.
    reviewed : str or None
        The schema's reason for keeping it anyway.

    """

    column: str
    findings: tuple[str, ...]
    reviewed: str | None

    def describe(self) -> str:
        """One line: the column, what it looks like, and why it is kept."""
        shapes = ", ".join(self.findings)
        return f"{self.column}: looks like {shapes}; kept as reviewed: {self.reviewed}"


def _profiled(column: Column) -> bool:
    return column.action == "keep" and column.role != "pseudonym"


def profile_kept_columns(
    frame: pd.DataFrame, schema: DatasetSchema
) -> tuple[ColumnProfile, ...]:
    """Profile every kept column; refuse one that looks like an identifier.

    Parameters
    ----------
    frame : pandas.DataFrame
        The raw export (already valid under ``schema``).
    schema : DatasetSchema
        Its raw contract.

    Returns
    -------
    tuple of ColumnProfile
        The kept columns that look like identifiers and were ``reviewed``.

    Raises
    ------
    IdentifierLeakError
        Naming the first column that looks like an identifier and is not
        marked ``reviewed``, and what it looks like (never a value).

    """
    reviewed = []
    for column in schema.columns:
        if not _profiled(column):
            continue
        findings = _findings(frame[column.name], column)
        if not findings:
            continue
        if column.reviewed is None:
            raise IdentifierLeakError(
                f"column {column.name!r} is kept but its values look like "
                f"{' and '.join(findings)}, which identify patients: drop or "
                "generalise it in the schema, or, if it is not an identifier, "
                'say why with reviewed = "..." on the column; nothing was written'
            )
        reviewed.append(ColumnProfile(column.name, findings, column.reviewed))
    return tuple(reviewed)


def _findings(values: pd.Series, column: Column) -> tuple[str, ...]:
    if column.kind in ("string", "date"):
        return _text_findings(values) if column.kind == "string" else ()
    present = values.dropna()
    numbers: _Floats = present.to_numpy(dtype=np.float64)
    found = []
    whole = bool(np.all(np.mod(numbers, 1) == 0)) if numbers.size else False
    if whole and _one_per_row(numbers):
        found.append("one value per row")
    if whole:
        found += _number_shapes(np.abs(numbers))
    if _AGE_NAME.search(column.name) and bool(np.any(numbers > 89)):
        found.append("ages over 89")
    return tuple(found)


def _one_per_row(numbers: _Floats) -> bool:
    """Whether whole ``numbers`` are all different (and enough to tell)."""
    if numbers.size < MIN_ROWS_FOR_UNIQUENESS:
        return False
    # Fewer whole numbers in the range than values: some repeat, no sort
    # needed (most clinical columns: a cholesterol of 0-600 in 1M rows).
    if float(numbers.max()) - float(numbers.min()) + 1 < numbers.size:
        return False
    return bool(np.unique(numbers).size == numbers.size)


def _number_shapes(numbers: _Floats) -> list[str]:
    """Identifier shapes held by most of ``numbers`` (whole, non-negative)."""
    if not numbers.size:
        return []

    def most(mask: npt.NDArray[np.bool_]) -> bool:
        return bool(mask.mean() >= _MAJORITY)

    found = []
    if most((numbers >= 1e6) & (numbers < 1e9)):
        found.append("SSNs or record numbers (7 to 9 digits)")
    phone = ((numbers >= 2e9) & (numbers < 1e10)) | (
        (numbers >= 1e10) & (numbers < 2e10)
    )
    if most(phone):
        found.append("phone numbers (10 digits)")
    if bool(np.all(numbers < 1e5)) and most(numbers >= 1e4):
        found.append("ZIP codes (5 digits)")
    if most(_yyyymmdd(numbers)):
        found.append("dates written yyyymmdd")
    return found


def _yyyymmdd(numbers: _Floats) -> npt.NDArray[np.bool_]:
    # Only numbers from 18000101 to 21001231 can be such dates: the slow
    # float divisions run on those alone (most columns have none).
    dated = np.zeros(numbers.size, dtype=bool)
    where = np.flatnonzero((numbers >= 18_000_101) & (numbers <= 21_001_231))
    if not where.size:
        return dated
    candidates = numbers[where]
    year = candidates // 10_000
    month = (candidates // 100) % 100
    day = candidates % 100
    dated[where] = (
        (year >= 1800)
        & (year <= 2100)
        & (month >= 1)
        & (month <= 12)
        & (day >= 1)
        & (day <= 31)
    )
    return dated


def _text_findings(values: pd.Series) -> tuple[str, ...]:
    text = text_array(values)
    present = len(text) - text.null_count
    if present < MIN_ROWS_FOR_UNIQUENESS:
        return ()
    distinct = pc.count_distinct(pc.utf8_lower(pc.utf8_trim_whitespace(text)))
    if int(distinct.as_py()) == present:
        return ("one value per row",)
    return ()
