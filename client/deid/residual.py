"""The residual-identifier check: anything identifier-like left after de-identifying.

This module owns the last line of defence, built apart from the scrubber:
:func:`scan_residual_identifiers` looks at every distinct value of every
kept column with :class:`~hospfed.client.deid.scan.ResidualScanner` (plain
Python: free text for digit shapes, contacts, dates, ages over 89 and any
word off the safe vocabulary; other text and numbers for identifier shapes
and names), and, given the raw identifiers, for each row's own identifier
values in its free text (word by word, outside scrub tags, with the needle
matcher of :mod:`~hospfed.client.deid.names`) and in its other text cells
(whole). It reports :class:`Finding` objects that name the column, the
kind and the first row, never the value. :func:`check_residual_identifiers`
fails closed on any finding, and the pipeline uses the block-wise pieces
(:func:`_value_leaks`, :func:`_value_findings`, :func:`_shape_findings`) to
scan while it de-identifies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hospfed.client.deid.blocks import (
    _in_parallel,
    _row_blocks,
    _text_chunks,
    _text_rows,
)
from hospfed.client.deid.names import _find_own_values, _row_needles, _word_spans
from hospfed.client.deid.needles import (
    _MIN_OWN_VALUE,
    _is_needle_source,
    _own_values,
    _OwnValues,
)
from hospfed.client.deid.scan import scanner
from hospfed.client.deid.tags import TAGS
from hospfed.client.deid.textbuf import Ints, _buffers
from hospfed.common.errors import ConfigError, IdentifierLeakError
from hospfed.common.schema import Column, DatasetSchema, is_text


@dataclass(frozen=True)
class Finding:
    """Something identifier-like in de-identified data (never the value itself).

    Attributes
    ----------
    column : str
        Where it was found.
    kind : str
        A kind of identifier (``"phone"``, ``"ssn"``, ``"date"``, ``"name"``,
        ...; see :data:`KINDS`) or ``"identifier_value"`` for a raw
        identifier value found as it was.
    rows : int
        How many rows hold one.
    source : str or None
        For ``identifier_value``: the raw identifier column it came from.
    row : int or None
        The index label of the first row holding one, where known.

    """

    column: str
    kind: str
    rows: int
    source: str | None = None
    row: int | None = None

    def describe(self) -> str:
        """One line naming the column, the kind of identifier and the first row."""
        if self.source is not None:
            what = f"a value of identifier column {self.source!r}"
        else:
            what = KINDS.get(self.kind, "an identifier")
        first = "" if self.row is None else f", first at row {self.row}"
        return (
            f"column {self.column!r}: {self.rows:,} rows hold {what} "
            f"({self.kind}{first})"
        )


KINDS = {
    "ssn": "a social security number",
    "phone": "a phone number",
    "number": "a long number (record, account, card or other identifier)",
    "email": "an email address or handle",
    "url": "a web address",
    "ip": "an IP address",
    "device": "a device address (MAC)",
    "date": "a date",
    "age": "an age over 89",
    "name": "a person's name",
    "location": "a place",
    "other": "a word off the safe vocabulary",
    "id": "a code of letters and digits",
}
"""What each kind of finding is, for messages."""

_Leaks = dict[tuple[str, str], Ints]
"""Rows (positions) whose cell in a column holds one of the row's own values
of an identifier column: ``(column, identifier column) -> rows``."""


def scan_residual_identifiers(
    frame: pd.DataFrame,
    schema: DatasetSchema,
    *,
    raw_identifier_values: pd.DataFrame | None = None,
) -> list[Finding]:
    """Look for anything identifier-like left in de-identified data.

    Every distinct value of every kept column is scanned
    (:class:`~hospfed.client.deid.scan.ResidualScanner`). With the raw
    identifiers, each free-text value is also searched for its own row's
    identifier values, and every other text column for cells equal to one
    of their row's identifier values.

    Parameters
    ----------
    frame : pandas.DataFrame
        De-identified data.
    schema : DatasetSchema
        The raw schema it was prepared under (or its de-identified schema,
        which finds patterns only).
    raw_identifier_values : pandas.DataFrame, optional
        The raw export (or just its identifier columns), with the same index
        labels as ``frame`` for the rows ``frame`` kept.

    Returns
    -------
    list of Finding
        Empty if nothing was found.

    """
    findings = _shape_findings(frame, schema)
    if raw_identifier_values is None or schema.stage != "raw":
        return findings
    raw = _aligned(raw_identifier_values, frame)
    sources = [c for c in schema.columns if c.name in raw.columns]
    sources = [c for c in sources if _is_needle_source(c)]
    checked = [
        (c.name, c.role == "free_text")
        for c in schema.deidentified().columns
        if c.name in frame.columns and c.kind == "string"
    ]
    source_text = {c.name: _text_chunks(raw[c.name]) for c in sources}
    checked_text = {name: _text_chunks(frame[name]) for name, _ in checked}

    def leaks_in(rows: slice) -> _Leaks:
        own = _own_values([(c, _text_rows(source_text[c.name], rows)) for c in sources])
        cells = {
            name: (_text_rows(checked_text[name], rows), free_text)
            for name, free_text in checked
        }
        return _value_leaks(cells, own, rows.start)

    parts = _in_parallel([partial(leaks_in, rows) for rows in _row_blocks(len(frame))])
    return findings + _value_findings(_merged(parts), checked, sources, kept=None)


def _aligned(raw: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    if raw.index.equals(frame.index):
        return raw
    if not raw.index.is_unique:
        raise ConfigError(
            "the raw identifier values need a unique index to line up with the "
            "de-identified rows"
        )
    return raw.reindex(frame.index)


def _shape_findings(
    frame: pd.DataFrame, schema: DatasetSchema | None = None
) -> list[Finding]:
    """Findings of the scanner in each kept column, one per column and kind.

    Free text (the schema's ``free_text`` columns) is read as free text, the
    other text and category columns as typed values, number columns as
    numbers; pseudonyms and dates are made here and left alone. Each
    distinct value is scanned once.
    """
    roles = {} if schema is None else {c.name: c for c in schema.columns}
    tasks = []
    for name in frame.columns:
        column = roles.get(str(name))
        if column is not None and (
            column.role == "pseudonym"
            or column.action == "pseudonymise"
            or column.kind == "date"
        ):
            continue
        free_text = column is not None and column.role == "free_text"
        names = column is None or column.reviewed is None
        tasks.append(
            partial(_column_findings, frame[name], str(name), free_text, names=names)
        )
    return [finding for found in _in_parallel(tasks) for finding in found]


def _column_findings(
    values: pd.Series, name: str, free_text: bool, *, names: bool = True
) -> list[Finding]:
    """Findings in one column: each distinct value scanned, counted per kind.

    ``names=False``: a typed column marked ``reviewed`` in the schema; its
    person and place names are not flagged (see ``ResidualScanner.value``).
    """
    dtype = values.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        return []
    check = scanner()
    numeric = pd.api.types.is_numeric_dtype(values.dtype)
    codes, distinct = pd.factorize(
        values if numeric or _is_text_column(values) else values.astype(str)
    )
    kinds: dict[int, str] = {}
    for code, value in enumerate(distinct):
        if numeric:
            kind = check.number(float(value))
        elif free_text:
            kind = check.free_text(str(value))
        else:
            kind = check.value(str(value), names=names)
        if kind is not None:
            kinds[code] = kind
    findings = []
    codes = np.asarray(codes)
    for kind in sorted(set(kinds.values())):
        flagged = np.array([c for c, k in kinds.items() if k == kind])
        hit = np.flatnonzero(np.isin(codes, flagged))
        first = values.index[hit[0]]
        row = int(first) if isinstance(first, (int, np.integer)) else None
        findings.append(Finding(name, kind, int(hit.size), row=row))
    return findings


def _is_text_column(values: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return False
    return is_text(values.dropna() if values.dtype == object else values)


def _value_leaks(
    cells: Mapping[str, tuple[pa.Array, bool]], own: _OwnValues, first_row: int
) -> _Leaks:
    """Rows of one block whose cells hold one of the row's own values.

    ``cells`` maps each text column of the output to its values in the block
    and whether it is free text (searched word by word) or not (compared
    whole); ``own`` are the block's needles, ``first_row`` its first row.
    """
    leaks: _Leaks = {}
    if not len(own):
        return leaks
    for name, (values, free_text) in cells.items():
        find = _own_value_rows if free_text else _whole_value_rows
        for source, rows in find(values, own).items():
            leaks[(name, source)] = rows + first_row
    return leaks


def _merged(parts: Sequence[_Leaks]) -> _Leaks:
    keys = {key for part in parts for key in part}
    return {
        key: np.concatenate([part[key] for part in parts if key in part])
        for key in keys
    }


def _value_findings(
    leaks: _Leaks,
    checked: Sequence[tuple[str, bool]],
    sources: Sequence[Column],
    *,
    kept: Ints | None,
) -> list[Finding]:
    """One finding per (column, identifier column) with leaks in kept rows."""
    findings = []
    for name, _ in checked:
        for source in sources:
            rows = leaks.get((name, source.name))
            if rows is None:
                continue
            if kept is not None:
                rows = rows[np.isin(rows, kept)]
            if rows.size:
                findings.append(
                    Finding(name, "identifier_value", int(rows.size), source.name)
                )
    return findings


def _by_source(pairs: set[tuple[int, int]], own: _OwnValues) -> dict[str, Ints]:
    """Distinct rows per source column, from (row, source index) pairs."""
    rows: dict[str, list[int]] = {}
    for row, source in sorted(pairs):
        rows.setdefault(own.sources[source], []).append(row)
    return {source: np.array(found, dtype=np.int64) for source, found in rows.items()}


def _own_value_rows(values: pa.Array, own: _OwnValues) -> dict[str, Ints]:
    """Rows whose free text still holds one of the row's own identifier values."""
    hits, slow_rows = _find_own_values(pc.ascii_lower(values), own)
    leaked: set[tuple[int, int]] = set()
    if hits.starts.size:
        offsets, _ = _buffers(values)
        rows = np.searchsorted(offsets, hits.starts, side="right") - 1
        suspects = np.unique(rows)
        texts = dict(
            zip(
                suspects.tolist(),
                values.take(pa.array(suspects)).to_pylist(),
                strict=True,
            )
        )
        for row, begin, end, needle in zip(
            rows.tolist(),
            (hits.starts - offsets[rows]).tolist(),
            (hits.ends - offsets[rows]).tolist(),
            hits.needles.tolist(),
            strict=True,
        ):
            if not _inside_tag(texts[row] or "", begin, end):
                leaked.add((row, int(own.source_index[needle])))
    if slow_rows.size:
        texts_slow = values.take(pa.array(slow_rows)).to_pylist()
        for row, text, needles in zip(
            slow_rows.tolist(), texts_slow, _row_needles(own, slow_rows), strict=True
        ):
            for needle, source in needles:
                spans = [] if text is None else _word_spans(text, needle)
                if any(not _inside_tag(text or "", b, e) for b, e in spans):
                    leaked.add((row, source))
    return _by_source(leaked, own)


_TAGS = frozenset(TAGS[1:])


def _inside_tag(text: str, begin: int, end: int) -> bool:
    """Whether ``text[begin:end]`` is part of a scrub tag such as ``[NAME]``."""
    left = text.rfind("[", 0, begin + 1)
    right = text.find("]", max(end - 1, 0))
    return left >= 0 and right >= 0 and text[left : right + 1] in _TAGS


def _whole_value_rows(values: pa.Array, own: _OwnValues) -> dict[str, Ints]:
    """Rows whose cell of a non-free-text column equals one of the row's own values."""
    cells = pc.utf8_lower(pc.utf8_trim_whitespace(values))
    widths = pc.fill_null(pc.binary_length(cells), -1).to_numpy(zero_copy_only=False)
    lengths = own.ends - own.starts
    same_width = np.flatnonzero(
        (lengths == widths[own.rows]) & (lengths >= _MIN_OWN_VALUE)
    )
    if not same_width.size:
        return {}
    equal = pc.equal(own.texts(same_width), cells.take(pa.array(own.rows[same_width])))
    found = same_width[pc.fill_null(equal, False).to_numpy(zero_copy_only=False)]
    leaked = {
        (int(r), int(s))
        for r, s in zip(own.rows[found], own.source_index[found], strict=True)
    }
    return _by_source(leaked, own)


def check_residual_identifiers(
    frame: pd.DataFrame,
    schema: DatasetSchema,
    *,
    raw_identifier_values: pd.DataFrame | None = None,
) -> None:
    """Fail closed if :func:`scan_residual_identifiers` finds anything.

    Raises
    ------
    IdentifierLeakError
        Naming the column and the kind of identifier (never the value).

    """
    _fail_closed(
        scan_residual_identifiers(
            frame, schema, raw_identifier_values=raw_identifier_values
        )
    )


def _fail_closed(findings: Sequence[Finding]) -> None:
    if findings:
        more = f" (and {len(findings) - 1} more findings)" if len(findings) > 1 else ""
        raise IdentifierLeakError(
            f"residual identifiers after de-identification: {findings[0].describe()}"
            f"{more}; nothing was written. Drop or scrub that column in the schema, "
            "or clean the export"
        )
