"""Reading a hospital's raw export (CSV or Parquet), typed by its schema, failing safe.

A raw export holds patient identifiers, so no message about it may quote
it. pyarrow's and pandas' own errors do (pyarrow's CSV reader puts the
whole offending row in its message: ``Expected 27 columns, got 28: <row>``),
so none of them is ever passed on: :func:`read_raw_export` translates every
failure into a :class:`~hospfed.common.errors.DataError` that names the
file, the line (CSV, counted as an editor does) or row (Parquet), the
column where it is known, what is wrong and what to do, and never a cell.
When the fast read fails, the file is read again, slowly, only to find where
(:func:`_diagnose_csv`): its bytes (NUL bytes, invalid UTF-8, a quote never
closed), its rows (a wrong number of fields, found with pyarrow's
``invalid_row_handler``, which is given the row number and never shows the
row) and its cells (a number column holding something else, found by
bisection). A file that reads but breaks the contract is located the same
way afterwards (:func:`locate_schema_error`), with the contract's own checks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv as pa_csv

from hospfed.client import csvscan
from hospfed.common.errors import ConfigError, DataError, SchemaError
from hospfed.common.schema import Column, DatasetSchema

__all__ = ["RAW_SUFFIXES", "locate_schema_error", "read_raw_export", "row_place"]

RAW_SUFFIXES = (".csv", ".parquet")
"""The raw export file types ``prepare`` reads."""

NUMERIC_KINDS = ("float", "int", "category")
"""Column kinds a CSV reader converts to numbers (``float64``, missing = NaN)."""

_CSV_BLOCK_BYTES = 16 << 20
"""Bytes of CSV each reader thread parses at a time: big blocks make few chunks
per column, and every Arrow kernel run over a column pays once per chunk."""

_FIX = "correct the export (or export it again) and run prepare again"
_AS_CSV = "export it as comma-separated UTF-8 text with a header line"


def read_raw_export(path: Path, schema: DatasetSchema) -> pd.DataFrame:
    """Read a raw export (CSV or Parquet) typed by ``schema``.

    In a CSV, text and date columns are read as strings (MRNs and ZIP codes
    keep their leading zeros) and the schema's number columns (``float``,
    ``int``, ``category``) as ``float64``; only an empty field is missing.
    Parquet keeps its own types. Before anything is returned the file is
    checked: not empty, no NUL byte, every quote closed, every row with the
    header's number of fields, every number column holding numbers, the
    header naming each of the schema's columns once and nothing else, and
    at least one row.

    Parameters
    ----------
    path : Path
        The raw export (``.csv`` or ``.parquet``).
    schema : DatasetSchema
        Its contract.

    Returns
    -------
    pandas.DataFrame
        One column per schema column, text as ``string[pyarrow]``.

    Raises
    ------
    ConfigError
        If the file's suffix is not one of :data:`RAW_SUFFIXES`.
    DataError
        If the file is missing, empty, unreadable or malformed; the message
        names the file, the line and the column, never a value.

    """
    suffix = path.suffix.lower()
    if suffix not in RAW_SUFFIXES:
        raise ConfigError(
            f"raw export {path}: unsupported suffix {path.suffix!r}; "
            f"allowed: {', '.join(RAW_SUFFIXES)}"
        )
    if not path.exists():
        raise DataError(f"raw export {path} does not exist")
    if not path.is_file():
        raise DataError(f"raw export {path} is not a file; give the export's file")
    try:
        size = path.stat().st_size
    except OSError as error:
        reason = error.strerror or "an input/output error"
        raise DataError(f"raw export {path} cannot be read: {reason}") from None
    if size == 0:
        raise DataError(
            f"raw export {path} is an empty file (0 bytes): no header and no rows; "
            "export the data again"
        )
    if suffix == ".parquet":
        frame = _read_parquet(path)
        _check_columns(path, [str(c) for c in frame.columns], schema)
    else:
        table = _read_csv(path, schema)
        _check_columns(path, table.column_names, schema)
        frame = table.to_pandas(types_mapper=_string_dtype)
    if frame.empty:
        only = "a header" if suffix == ".csv" else "column names"
        raise DataError(
            f"raw export {path} has no rows, only {only}; export the data again "
            "with its rows"
        )
    return frame


def row_place(path: Path, row: int) -> str:
    """Where row ``row`` (0-based, data rows) of a raw export is: a line or a row.

    CSV lines are counted as an editor counts them (the header is line 1;
    a value spanning lines and blank lines count).
    """
    if path.suffix.lower() != ".csv":
        return f"row {row + 1}"
    line = csvscan.record_line(path, row + 1)
    return f"line {line}" if line is not None else f"data row {row + 1}"


def locate_schema_error(
    path: Path, frame: pd.DataFrame, schema: DatasetSchema, error: SchemaError
) -> SchemaError:
    """Say where in the file a contract violation is: file, line, column.

    The first of ``schema``'s columns that breaks its rules is found again
    with :meth:`~hospfed.common.schema.Column.check` and the first row that
    does so by bisection (every rule but a column's type is about single
    values). Only for an error; it reads the file again to count lines.

    Parameters
    ----------
    path : Path
        The raw export ``frame`` was read from.
    frame : pandas.DataFrame
        What :func:`read_raw_export` returned.
    schema : DatasetSchema
        The contract it broke.
    error : SchemaError
        The contract check's error (it names the column, never a value).

    Returns
    -------
    SchemaError
        The same message, with the file, the first offending line (or row)
        and what to do.

    """
    for column in schema.columns:
        if column.name not in frame.columns:
            continue
        values = frame[column.name]
        what = _check_error(column, values)
        if what is None:
            continue
        row = _first_bad_row(column, values)
        if row is None:
            return SchemaError(f"raw export {path}: {what}; {_FIX}")
        field = _field_number(path, frame, column.name)
        return SchemaError(
            f"raw export {path}, {row_place(path, row)}, {field} {column.name!r}: "
            f"{_without_column(what, column.name)} (the first one is here); "
            f"{_FIX}"
        )
    return SchemaError(f"raw export {path}: {error}; {_FIX}")


# --- reading ----------------------------------------------------------------


def _string_dtype(arrow_type: pa.DataType) -> pd.StringDtype | None:
    return pd.StringDtype("pyarrow") if pa.types.is_string(arrow_type) else None


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (pa.ArrowException, OSError, ValueError) as error:
        # Their messages may quote the file's bytes: only the type is shown.
        raise DataError(
            f"raw export {path} is not a readable Parquet file "
            f"({type(error).__name__}); export it again as Parquet or as CSV"
        ) from None


def _column_types(schema: DatasetSchema) -> dict[str, pa.DataType]:
    return {
        c.name: pa.float64() if c.kind in NUMERIC_KINDS else pa.string()
        for c in schema.columns
    }


def _read_csv(path: Path, schema: DatasetSchema) -> pa.Table:
    try:
        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
            convert_options=pa_csv.ConvertOptions(
                column_types=_column_types(schema),
                null_values=[""],
                strings_can_be_null=True,
            ),
        )
    except pa.ArrowException:
        # pyarrow's message quotes the offending row or value: never shown.
        raise _diagnose_csv(path, schema) from None
    except OSError as error:  # the system's message only, never a library's
        reason = error.strerror or "an input/output error"
        raise DataError(f"raw export {path} cannot be read: {reason}") from None
    # pyarrow reads a NUL byte as text and an unclosed quote as one long
    # value up to the end of the file: both are refused here.
    problem = _byte_problem(path, schema, check_utf8=False)
    if problem is not None:
        raise problem
    return table


def _check_columns(path: Path, names: list[str], schema: DatasetSchema) -> None:
    """The header must name each schema column once and nothing else.

    A name the schema does not know is never shown: in a file whose header
    is missing or broken, the "names" are a patient's values.
    """
    expected = schema.column_names
    contract = f"schema {schema.name!r} v{schema.version}"
    csv_file = path.suffix.lower() == ".csv"
    header, fields = ("line 1 (the header)", "fields") if csv_file else ("", "columns")
    if not any(name in expected for name in names):
        place = "line 1: not the header" if csv_file else "not the column names"
        raise DataError(
            f"raw export {path}, {place} of {contract}: none of its {len(names)} "
            f"{fields} names a column of it (such as {expected[0]!r}); "
            + ("the first line must be the header" if csv_file else "name them")
            + " (or choose the right --schema)"
        )
    twice = sorted({n for n in names if n in expected and names.count(n) > 1})
    if twice:
        raise DataError(
            f"raw export {path}{', ' * csv_file}{header}: names {twice} more than "
            f"once; {_FIX}"
        )
    missing = [n for n in expected if n not in names]
    unknown = [str(i) for i, name in enumerate(names, start=1) if name not in expected]
    if missing or unknown:
        parts = [f"missing columns {missing}"] if missing else []
        if unknown:
            listed = ", ".join(unknown[:10]) + (", ..." if len(unknown) > 10 else "")
            parts.append(
                f"columns not in {contract} at {fields} {listed} (names not shown)"
            )
        raise DataError(
            f"raw export {path}{', ' * csv_file}{header}: {'; '.join(parts)}; export "
            "exactly the schema's columns (or choose the right --schema)"
        )


# --- where a CSV is broken, found without showing any of it -------------------


def _diagnose_csv(path: Path, schema: DatasetSchema) -> DataError:
    """Find the first thing that breaks a CSV that pyarrow refused to read."""
    problem = _byte_problem(path, schema, check_utf8=True)
    if problem is not None:
        return problem
    bad_rows: list[int] = []

    def invalid_row(row: pa_csv.InvalidRow) -> str:
        # The row's text is never kept: only its number and field counts.
        bad_rows.extend([row.number or 0, row.expected_columns, row.actual_columns])
        return "error"

    try:
        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(use_threads=False),  # rows numbered
            parse_options=pa_csv.ParseOptions(invalid_row_handler=invalid_row),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(schema.column_names, pa.binary()),
                null_values=[""],
                strings_can_be_null=True,
                check_utf8=False,
            ),
        )
    except pa.ArrowException:
        if not bad_rows:
            return DataError(f"raw export {path} cannot be read as CSV; {_AS_CSV}")
        number, expected, actual = bad_rows[:3]
        line = csvscan.record_line(path, number - 1)
        return DataError(
            f"raw export {path}, {_line(line, number)}: {actual} fields where the "
            f"header has {expected} (a stray comma or quote, or a cut line?); {_FIX}"
        )
    found = _first_not_a_number(table, schema)
    if found is None:
        return DataError(f"raw export {path} cannot be read as CSV; {_AS_CSV}")
    row, name = found
    return DataError(
        f"raw export {path}, {row_place(path, row)}, field "
        f"{table.column_names.index(name) + 1} {name!r}: not a number (the schema "
        f"wants numbers here; an empty field is missing); {_FIX}"
    )


def _first_not_a_number(
    table: pa.Table, schema: DatasetSchema
) -> tuple[int, str] | None:
    """The first row and column of a number column that is not a number."""
    first: tuple[int, str] | None = None
    for column in schema.columns:
        if column.kind not in NUMERIC_KINDS or column.name not in table.column_names:
            continue
        # Trimmed, as the reader does; then cast as it converts.
        text = pc.utf8_trim_whitespace(table.column(column.name).cast(pa.string()))

        def fails(rows: int, text: pa.ChunkedArray = text) -> bool:
            try:
                pc.cast(text.slice(0, rows), pa.float64())
            except pa.ArrowInvalid:
                return True
            return False

        row = _first_failing(len(text), fails)
        if row is not None and (first is None or row < first[0]):
            first = (row, column.name)
    return first


def _byte_problem(
    path: Path, schema: DatasetSchema, *, check_utf8: bool
) -> DataError | None:
    """A NUL byte, invalid UTF-8 or a quote never closed, and where it is."""
    scan = csvscan.scan_bytes(path)
    if scan.nul is not None:
        where = _byte_place(path, scan.nul, schema)
        return DataError(
            f"raw export {path}, {where}: a NUL byte (the file is damaged, or "
            "binary rather than text); export the data again"
        )
    bad = csvscan.first_invalid_utf8(path) if check_utf8 else None
    if bad is not None:
        where = _byte_place(path, bad, schema)
        return DataError(
            f"raw export {path}, {where}: bytes that are not UTF-8 text; export "
            "the file as UTF-8"
        )
    if not scan.quotes_balanced:
        unclosed = next((r for r in csvscan.records(path) if not r.closed), None)
        where = _line(None if unclosed is None else unclosed.line, None)
        return DataError(
            f"raw export {path}, {where}: a double quote opens a value that is "
            f"never closed, or a value holds a quote that is not doubled; {_FIX}"
        )
    return None


def _byte_place(path: Path, offset: int, schema: DatasetSchema) -> str:
    """``line L, field F 'column'``; the name only if it is a schema column."""
    position = csvscan.byte_position(path, offset)
    if position is None:
        return f"byte {offset + 1}"
    place = f"line {position.line}"
    if position.record == 0:
        return f"{place} (the header)"
    header = csvscan.header_fields(path)
    name = header[position.field] if position.field < len(header) else None
    # A broken header's "names" can be a patient's values: only known ones.
    shown = f" {name!r}" if name in schema.column_names else ""
    return f"{place}, field {position.field + 1}{shown}"


def _line(line: int | None, record: int | None) -> str:
    if line is not None:
        return f"line {line}"
    return f"record {record}" if record is not None else "a line not found"


# --- the first row that breaks a rule ----------------------------------------


def _first_failing(size: int, fails: Callable[[int], bool]) -> int | None:
    """The first row (0-based) of ``size`` whose prefix fails, by bisection.

    ``fails(n)`` says whether the first ``n`` rows break the rule; it must
    fail for every longer prefix once it fails. None if all rows pass, or if
    even no rows fail (the problem is not in any row: a column's type).
    """
    if fails(0) or not fails(size):
        return None
    good, bad = 0, size
    while bad - good > 1:
        middle = (good + bad) // 2
        if fails(middle):
            bad = middle
        else:
            good = middle
    return bad - 1


def _check_error(column: Column, values: pd.Series) -> str | None:
    try:
        column.check(values)
    except SchemaError as error:
        return str(error)
    return None


def _first_bad_row(column: Column, values: pd.Series) -> int | None:
    """The first row breaking ``column``'s rules (None for a type problem)."""
    return _first_failing(
        len(values), lambda rows: _check_error(column, values.iloc[:rows]) is not None
    )


def _field_number(path: Path, frame: pd.DataFrame, name: str) -> str:
    word = "field" if path.suffix.lower() == ".csv" else "column"
    return f"{word} {list(frame.columns).index(name) + 1}"


def _without_column(message: str, name: str) -> str:
    return message.removeprefix(f"column {name!r}: ")
