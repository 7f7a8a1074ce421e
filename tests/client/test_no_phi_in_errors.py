"""No patient value in any message: broken exports through every data command.

A real-looking raw export (synthetic identifiers on Cleveland's real rows)
is broken in many ways, each time in rows full of identifiers, and given to
every ``hospfed-client`` command that reads data (``prepare``, ``prepare
--schema FILE``, ``inspect``, ``check``), each run as a real subprocess.
hospfed-client has no verbosity flag; every Python warning is shown
(``PYTHONWARNINGS=always``, except typer's own import-time deprecation
notice) so that nothing said on the side goes unscanned. Each run must exit
non-zero with one line on stderr that names the file (and, for ``prepare``,
the line and column), and nothing it prints may hold any identifier of the
broken rows, in any spelling (the SSN without dashes, the name in lower
case, the date of birth as MM/DD/YYYY, ...), nor any full identifier of any
row.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pytest

from hospfed.client.data import Meta
from hospfed.client.prepare import prepare_export
from hospfed.client.vault import (
    generate_key_file,
    load_key,
    read_encrypted_frame,
    write_encrypted_frame,
)
from hospfed.common.datasets.heart_export import hospital_raw_export, write_raw_export
from hospfed.common.datasets.heart_schema import FED_HEART_RAW_SCHEMA, FED_HEART_SCHEMA
from hospfed.common.schema import dumps_schema

CLIENT = Path(sys.executable).parent / "hospfed-client"
ENV = {
    **os.environ,
    "PYTHONWARNINGS": "always,ignore::DeprecationWarning:typer",
    "COLUMNS": "200",
}
RAW = hospital_raw_export("cleveland", seed=13)
IDENTIFIERS = (
    "mrn",
    "patient_name",
    "ssn",
    "birth_date",
    "admission_date",
    "street_address",
    "phone",
    "email",
    "health_plan_id",
)
FIELD = {name: i + 1 for i, name in enumerate(RAW.columns)}  # 1-based, as reported
LAST = len(RAW) - 1


def needles(rows: list[int]) -> set[str]:
    """Every identifier of every row, and partial spellings of ``rows``' ones."""
    found = {
        value
        for column in IDENTIFIERS
        for value in RAW[column].dropna().astype(str)
        if len(value) >= 6
    }
    for row in rows:
        own = RAW.iloc[row]
        name = str(own["patient_name"])
        first, *_, last = name.split()
        year, month, day = str(own["birth_date"]).split("-")
        ssn, phone = str(own["ssn"]), str(own["phone"]).split("x")[0]
        street = str(own["street_address"])
        found |= {
            name.lower(),
            name.upper(),
            f"{last}, {first}",
            first,
            last,
            ssn.replace("-", ""),
            ssn.replace("-", " "),
            re.sub(r"\D", "", phone)[-10:],
            str(own["email"]).split("@")[0],
            f"{month}/{day}/{year}",
            f"{year}{month}{day}",
            street.lower(),
            street.split(" ", 1)[1],
        }
    return {n for n in found if len(n) >= 4}


def leaked(output: str, rows: list[int]) -> list[str]:
    lowered = output.lower()
    hits = []
    for needle in needles(rows):
        if needle.isalpha():  # a lone first or last name: a whole word
            if re.search(rf"\b{re.escape(needle)}\b", output):
                hits.append(needle)
        elif needle.lower() in lowered:
            hits.append(needle)
    return hits


# --- broken exports ---------------------------------------------------------


def _csv_text() -> str:
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "raw.csv"
        write_raw_export(RAW, path)
        return path.read_text(encoding="utf-8")


_CSV_TEXT = _csv_text()


def csv_lines() -> list[str]:
    """The export as CSV lines: the header, then row i on line i + 2."""
    return _CSV_TEXT.splitlines(keepends=True)


def line_of(row: int) -> int:
    return row + 2


def with_line(row: int, change: Callable[[str], str]) -> bytes:
    lines = csv_lines()
    lines[line_of(row) - 1] = change(lines[line_of(row) - 1])
    return "".join(lines).encode()


def quoted(row: int, column: str) -> str:
    return f'"{RAW.iloc[row][column]}"'


def set_clinical(line: str, column: str, text: str) -> str:
    body = line.rstrip("\n")
    head, *clinical = body.rsplit(",", 14)
    clinical[list(RAW.columns[13:]).index(column)] = text
    return ",".join([head, *clinical]) + "\n"


def crlf_with_blank_and_multiline(row: int) -> bytes:
    """CRLF, a blank line after line 3 and a note over two lines in row 2."""
    lines = [line.replace("\n", "\r\n") for line in csv_lines()]
    note = quoted(2, "note")
    lines[line_of(2) - 1] = lines[line_of(2) - 1].replace(
        note, note[:-1] + '\r\nCalled back."'
    )
    lines.insert(3, "\r\n")
    index = line_of(row)  # one more: the blank line comes before it
    lines[index] = lines[index].replace(
        quoted(row, "birth_date"), '"' + _us_date(row) + '"'
    )
    return "".join(lines).encode()


def _us_date(row: int) -> str:
    year, month, day = str(RAW.iloc[row]["birth_date"]).split("-")
    return f"{month}/{day}/{year}"


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def age_as_text(row: int) -> bytes:
    frame = RAW.copy()
    frame["age"] = frame["age"].astype("int64").astype(str)
    frame.loc[row, "age"] = RAW.iloc[row]["patient_name"]
    return parquet_bytes(frame)


def bad_date_in_parquet(row: int) -> bytes:
    frame = RAW.copy()
    frame.loc[row, "birth_date"] = _us_date(row)
    return parquet_bytes(frame)


@dataclass(frozen=True)
class Broken:
    """One broken raw export and what ``prepare`` must say about it."""

    name: str
    suffix: str
    content: Callable[[], bytes]
    rows: list[int]  # whose identifiers are in the broken spot
    expected: tuple[str, ...]  # fragments of prepare's message


def _name_in_quote_left_open(line: str, row: int) -> str:
    return line.replace(
        quoted(row, "patient_name") + ",", quoted(row, "patient_name")[:-1] + ","
    )


CASES = [
    Broken(
        "extra_field",
        ".csv",
        lambda: with_line(
            4, lambda s: s.rstrip("\n") + "," + quoted(4, "email") + "\n"
        ),
        [4],
        ("line 6", "28 fields", "27"),
    ),
    Broken(
        "missing_field",
        ".csv",
        lambda: with_line(9, lambda s: s.rstrip("\n").rsplit(",", 1)[0] + "\n"),
        [9],
        ("line 11", "26 fields"),
    ),
    Broken(
        "quote_never_closed",
        ".csv",
        lambda: with_line(17, lambda s: _name_in_quote_left_open(s, 17)),
        [17],
        ("line 19", "never closed"),
    ),
    Broken(
        "quote_never_closed_at_the_end",
        ".csv",
        lambda: with_line(LAST, lambda s: s[: s.rindex('"')] + s[s.rindex('"') + 1 :]),
        [LAST],
        (f"line {line_of(LAST)}", "never closed"),
    ),
    Broken(
        "stray_quote_in_a_number",
        ".csv",
        lambda: with_line(42, lambda s: set_clinical(s, "chol", '2"41')),
        [42],
        ("line 44", "quote"),
    ),
    Broken(
        "name_in_a_number_column",
        ".csv",
        lambda: with_line(
            77, lambda s: set_clinical(s, "chol", quoted(77, "patient_name"))
        ),
        [77],
        ("line 79", f"field {FIELD['chol']} 'chol'", "not a number"),
    ),
    Broken(
        "ssn_in_a_number_column",
        ".csv",
        lambda: with_line(
            78, lambda s: set_clinical(s, "age", str(RAW.iloc[78]["ssn"]))
        ),
        [78],
        ("line 80", "'age'", "not a number"),
    ),
    Broken(
        "date_of_birth_in_another_format",
        ".csv",
        lambda: with_line(
            101, lambda s: s.replace(quoted(101, "birth_date"), f'"{_us_date(101)}"')
        ),
        [101],
        ("line 103", f"field {FIELD['birth_date']} 'birth_date'", "not dates"),
    ),
    Broken(
        "ssn_without_dashes",
        ".csv",
        lambda: with_line(
            150,
            lambda s: s.replace(
                quoted(150, "ssn"), quoted(150, "ssn").replace("-", "")
            ),
        ),
        [150],
        ("line 152", "'ssn'", "pattern"),
    ),
    Broken(
        "invalid_utf8",
        ".csv",
        lambda: with_line(200, lambda s: s).replace(
            str(RAW.iloc[200]["patient_name"]).encode(),
            str(RAW.iloc[200]["patient_name"]).encode().replace(b" ", b"\xff\xfe "),
        ),
        [200],
        ("line 202", f"field {FIELD['patient_name']} 'patient_name'", "UTF-8"),
    ),
    Broken(
        "nul_byte",
        ".csv",
        lambda: with_line(
            250,
            lambda s: s.replace(
                quoted(250, "street_address"),
                quoted(250, "street_address").replace(" ", "\0", 1),
            ),
        ),
        [250],
        ("line 252", "'street_address'", "NUL"),
    ),
    Broken(
        "crlf_blank_line_and_multiline_value",
        ".csv",
        lambda: crlf_with_blank_and_multiline(280),
        [280],
        (f"line {line_of(280) + 2}", "'birth_date'"),
    ),
    Broken(
        "no_header_line",
        ".csv",
        lambda: "".join(csv_lines()[1:]).encode(),
        [0],
        ("line 1", "not the header"),
    ),
    Broken("header_only", ".csv", csv_lines()[0].encode, [], ("no rows",)),
    Broken("empty_file", ".csv", lambda: b"", [], ("empty file",)),
    Broken("blank_lines_only", ".csv", lambda: b"\n\n\n", [], ("cannot be read",)),
    Broken(
        "parquet_name_in_a_number_column",
        ".parquet",
        lambda: age_as_text(5),
        [5],
        ("'age'", "expected numbers"),
    ),
    Broken(
        "parquet_date_of_birth_in_another_format",
        ".parquet",
        lambda: bad_date_in_parquet(6),
        [6],
        ("row 7", "'birth_date'", "not dates"),
    ),
    Broken(
        "parquet_that_is_not_parquet",
        ".parquet",
        lambda: _CSV_TEXT.encode()[:20_000],
        list(range(40)),
        ("not a readable Parquet file",),
    ),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("site")
    generate_key_file(work / "site.key")
    schema = replace(FED_HEART_RAW_SCHEMA, name="st-mary-raw", version=3)
    (work / "st-mary.toml").write_text(dumps_schema(schema, fmt="toml"))
    return work


def run(*argv: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLIENT), *map(str, argv)],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=cwd,
        timeout=300,
    )


def assert_one_line_without_values(
    done: subprocess.CompletedProcess[str], rows: list[int], file: str
) -> str:
    output = done.stdout + done.stderr
    assert not leaked(output, rows), (leaked(output, rows), output)
    assert done.returncode != 0, output
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hospfed-client: error: "), output
    assert "Traceback" not in output
    assert file in lines[0]
    return lines[0]


COMMANDS = {
    "prepare": ("prepare", "{raw}", "--key", "site.key", "--out", "{out}"),
    "prepare_with_schema_file": (
        "prepare",
        "{raw}",
        "--key",
        "site.key",
        "--out",
        "{out}",
        "--schema",
        "st-mary.toml",
    ),
    "inspect": ("inspect", "{raw}", "--key", "site.key"),
    "check": ("check", "{raw}", "--key", "site.key"),
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_broken_export_is_refused_in_one_line_without_any_value(
    site: Path, case: Broken, command: str
) -> None:
    raw = f"{case.name}-{command}{case.suffix}"
    (site / raw).write_bytes(case.content())
    out = f"{case.name}-{command}.hfd"
    argv = [a.format(raw=raw, out=out) for a in COMMANDS[command]]
    done = run(*argv, cwd=site)
    message = assert_one_line_without_values(done, case.rows, raw)
    assert not (site / out).exists()
    if command.startswith("prepare"):
        for fragment in case.expected:
            assert fragment in message, (fragment, message)
        assert re.search(r"(export|run prepare|--schema)", message.split(": ", 2)[-1])


# --- broken prepared datasets ----------------------------------------------


def _prepared_like(frame: pd.DataFrame, path: Path, key: Path) -> None:
    metadata = {
        Meta.SCHEMA: dumps_schema(FED_HEART_SCHEMA),
        Meta.FINGERPRINT: FED_HEART_SCHEMA.fingerprint(),
        Meta.PREPARED_AT: "2024-01-01T00:00:00Z",
        Meta.REPORT: json.dumps({}),
    }
    write_encrypted_frame(frame, path, load_key(key), metadata=metadata)


def _no_rows(path: Path, key: Path) -> None:
    """A genuine prepared dataset (one row, then none), as an old prepare wrote."""
    raw = path.with_suffix(".csv")
    write_raw_export(RAW.iloc[:1], raw)
    prepare_export(
        raw, path, schema=FED_HEART_RAW_SCHEMA, key=load_key(key), k=1, min_rows=1
    )
    raw.unlink()
    frame, metadata = read_encrypted_frame(path, load_key(key))
    write_encrypted_frame(frame.iloc[:0], path, load_key(key), metadata=metadata)


def _truncated(path: Path, key: Path) -> None:
    _prepared_like(RAW, path, key)
    path.write_bytes(path.read_bytes()[:4000])


DATASETS: dict[str, Callable[[Path, Path], None]] = {
    "empty_file": lambda path, key: path.write_bytes(b""),
    "raw_rows_inside": lambda path, key: _prepared_like(RAW, path, key),
    "no_rows": _no_rows,
    "truncated": _truncated,
    "directory": lambda path, key: path.mkdir(),
}


@pytest.mark.parametrize("command", ["inspect", "check"])
@pytest.mark.parametrize("broken", list(DATASETS))
def test_a_broken_prepared_dataset_is_refused_in_one_line(
    site: Path, broken: str, command: str
) -> None:
    path = site / f"{broken}-{command}.hfd"
    DATASETS[broken](path, site / "site.key")
    done = run(command, path.name, "--key", "site.key", cwd=site)
    assert_one_line_without_values(done, list(range(len(RAW))), path.name)
