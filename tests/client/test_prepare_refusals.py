"""``prepare`` refuses, early and in one line, what would fail late or silently.

An export with no rows, fewer than ``--min-rows``, or whose k-anonymity
leaves fewer than that, is refused and nothing is written; an output that
cannot be written is found before any work, by writing a probe file; and
``check``/``inspect`` on a dataset too small to use say so in one line.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import hospfed.client.prepare as prepare_module
from hospfed.client.cli import main
from hospfed.client.prepare import (
    DEFAULT_MIN_ROWS,
    check_output_writable,
    prepare_export,
)
from hospfed.client.raw import read_raw_export
from hospfed.client.vault import generate_key_file, load_key
from hospfed.common.datasets.heart_export import hospital_raw_export, write_raw_export
from hospfed.common.datasets.heart_schema import FED_HEART_RAW_SCHEMA
from hospfed.common.errors import ConfigError, DataError
from hospfed.common.schema import dumps_schema


def run(capsys, *argv):
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return stop.value.code, out, err


@pytest.fixture
def site(tmp_path):
    generate_key_file(tmp_path / "site.key")
    return tmp_path


def export(site, rows=None, name="raw.csv", hospital="cleveland"):
    frame = hospital_raw_export(hospital)
    if rows is not None:
        frame = frame.iloc[:rows]
    write_raw_export(frame, site / name)
    return site / name


def files(site):
    return sorted(p.name for p in site.iterdir())


def with_quasi_identifiers(*names):
    """The built-in raw schema whose only quasi-identifiers are ``names``.

    ``names`` are clinical columns; every column that would give another
    quasi-identifier (a year, a 3-digit ZIP, ...) is dropped.
    """
    columns = tuple(
        replace(c, role="quasi_identifier")
        if c.name in names
        else replace(c, deid="drop")
        if c.role == "quasi_identifier" or c.action in ("year", "zip3")
        else c
        for c in FED_HEART_RAW_SCHEMA.columns
    )
    schema = replace(FED_HEART_RAW_SCHEMA, name="qi-raw", columns=columns)
    assert set(schema.deidentified().quasi_identifiers) == set(names)
    return schema


def test_k_anonymity_that_suppresses_every_row_is_refused(site, capsys):
    # Exact age, cholesterol, blood pressure and heart rate: every row alone.
    raw = export(site)
    schema = with_quasi_identifiers("age", "trestbps", "chol", "thalach")
    (site / "qi.json").write_text(dumps_schema(schema))
    code, out, err = run(
        capsys,
        "prepare",
        raw,
        "--key",
        site / "site.key",
        "--out",
        site / "o.hfd",
        "--schema",
        site / "qi.json",
        "--k",
        "5",
    )
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert "k-anonymity with k=5 suppressed all 303 rows" in err
    assert "generalise the quasi-identifiers or lower --k" in err
    assert "nothing was written" in err
    assert files(site) == ["qi.json", "raw.csv", "site.key"]


def test_k_anonymity_leaving_fewer_than_min_rows_is_refused(site):
    raw = export(site)  # age and sex: 14 of Cleveland's 303 rows are alone
    with pytest.raises(
        DataError, match=r"k=2 over the quasi-identifiers age, sex left 289 of 303 rows"
    ):
        prepare_export(
            raw,
            site / "o.hfd",
            schema=with_quasi_identifiers("age", "sex"),
            key=load_key(site / "site.key"),
            k=2,
            min_rows=290,
        )
    assert files(site) == ["raw.csv", "site.key"]
    result = prepare_export(
        raw,
        site / "o.hfd",
        schema=with_quasi_identifiers("age", "sex"),
        key=load_key(site / "site.key"),
        k=2,
        min_rows=289,
    )
    assert result.report.rows_out == 289


def test_an_export_smaller_than_min_rows_is_refused_before_de_identification(
    site, capsys, monkeypatch
):
    raw = export(site, rows=DEFAULT_MIN_ROWS - 1)

    def never(*args, **kwargs):
        raise AssertionError("de-identification ran")

    monkeypatch.setattr(prepare_module, "deidentify_checked", never)
    code, _, err = run(
        capsys, "prepare", raw, "--key", site / "site.key", "--out", site / "o.hfd"
    )
    assert code == 2
    assert f"has {DEFAULT_MIN_ROWS - 1} rows, fewer than the minimum of" in err
    assert "--min-rows" in err and "nothing was written" in err
    assert files(site) == ["raw.csv", "site.key"]


def test_min_rows_can_be_lowered_but_not_below_one(site, capsys):
    raw = export(site, rows=DEFAULT_MIN_ROWS - 1)
    out = site / "o.hfd"
    (site / "no-qi.json").write_text(dumps_schema(with_quasi_identifiers()))
    code, stdout, _ = run(
        capsys,
        "prepare",
        raw,
        "--key",
        site / "site.key",
        "--out",
        out,
        "--schema",
        site / "no-qi.json",
        "--min-rows",
        DEFAULT_MIN_ROWS - 1,
    )
    assert code == 0 and f"rows: {DEFAULT_MIN_ROWS - 1} in" in stdout
    assert out.exists()
    code, _, err = run(
        capsys,
        "prepare",
        raw,
        "--key",
        site / "site.key",
        "--out",
        out,
        "--min-rows",
        "0",
    )
    assert code == 2 and "--min-rows" in err
    with pytest.raises(ConfigError, match="min_rows"):
        prepare_export(
            raw,
            out,
            schema=FED_HEART_RAW_SCHEMA,
            key=load_key(site / "site.key"),
            min_rows=0,
        )


def test_exactly_min_rows_is_enough(site):
    raw = export(site, rows=DEFAULT_MIN_ROWS)
    result = prepare_export(
        raw,
        site / "o.hfd",
        schema=FED_HEART_RAW_SCHEMA,
        key=load_key(site / "site.key"),
        k=1,  # k-anonymity is not the point: a few rows are few groups
    )
    assert result.report.rows_out == DEFAULT_MIN_ROWS


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"is an empty file \(0 bytes\)"),
        (None, "has no rows, only a header"),
    ],
    ids=["empty-file", "header-only"],
)
def test_an_empty_or_header_only_csv_says_so(site, content, message):
    raw = site / "raw.csv"
    if content is None:
        export(site)
        raw.write_text(raw.read_text().splitlines(keepends=True)[0])
    else:
        raw.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_raw_export(raw, FED_HEART_RAW_SCHEMA)


def test_a_header_only_parquet_says_no_rows(site):
    raw = site / "raw.parquet"
    write_raw_export(hospital_raw_export("va").iloc[:0], raw)
    with pytest.raises(DataError, match="has no rows, only column names"):
        read_raw_export(raw, FED_HEART_RAW_SCHEMA)


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("/proc/hospfed-probe/site.hfd", "does not exist"),
        ("/proc/site.hfd", "cannot write /proc/site.hfd: .*probe file in /proc"),
        ("{site}", "it is a directory"),
        ("{site}/missing/site.hfd", "does not exist"),
        ("{site}/raw.csv", "it is the raw export"),
    ],
    ids=["missing-dir", "pseudo-fs", "directory", "missing-parent", "the-input"],
)
def test_the_output_is_probed_before_any_work(site, monkeypatch, out, message):
    raw = export(site)

    def never(*args, **kwargs):
        raise AssertionError("the export was read")

    monkeypatch.setattr(prepare_module, "read_raw_export", never)
    with pytest.raises(ConfigError, match=message):
        prepare_export(
            raw,
            Path(out.format(site=site)),
            schema=FED_HEART_RAW_SCHEMA,
            key=load_key(site / "site.key"),
        )
    assert files(site) == ["raw.csv", "site.key"]


def test_the_probe_leaves_nothing_behind(site):
    check_output_writable(site / "site.hfd")
    assert files(site) == ["site.key"]


def test_a_full_disk_is_found_by_the_probe(site, monkeypatch):
    import errno
    import os

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(prepare_module.os, "write", full)
    with pytest.raises(ConfigError, match="No space left on device"):
        check_output_writable(site / "site.hfd")
    monkeypatch.undo()
    assert files(site) == ["site.key"]


def test_check_on_a_dataset_too_small_to_train_on_is_one_line(site, capsys):
    raw = export(site, rows=1)
    out = site / "one.hfd"
    prepare_export(
        raw,
        out,
        schema=FED_HEART_RAW_SCHEMA,
        key=load_key(site / "site.key"),
        k=1,
        min_rows=1,
    )
    code, _, err = run(capsys, "check", out, "--key", site / "site.key")
    assert code == 2 and err.count("\n") == 1
    assert "1 of its 1 rows" in err and "prepare a larger export" in err


def test_k_one_turns_the_k_check_off_and_zero_is_refused(site, capsys):
    raw = export(site, rows=DEFAULT_MIN_ROWS, hospital="va")
    out = site / "o.hfd"
    code, stdout, _ = run(
        capsys, "prepare", raw, "--key", site / "site.key", "--out", out, "--k", "1"
    )
    assert (
        code == 0 and f"rows: {DEFAULT_MIN_ROWS} in, {DEFAULT_MIN_ROWS} out" in stdout
    )
    code, _, err = run(
        capsys, "prepare", raw, "--key", site / "site.key", "--out", out, "--k", "0"
    )
    assert code == 2 and "--k" in err
