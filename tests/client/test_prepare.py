"""The data path: raw export -> prepare -> encrypted dataset -> training data."""

import re
import stat
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from hospfed.client.data import NodeSettings, load_hospital_data, open_prepared
from hospfed.client.prepare import deid_secrets, prepare_export, read_raw_export
from hospfed.client.vault import Passphrase, generate_key_file, read_encrypted_frame
from hospfed.common.datasets import FED_HEART_TASK
from hospfed.common.datasets.heart import HOSPITALS, load_hospital
from hospfed.common.datasets.heart_export import (
    hospital_raw_export,
    planted_identifiers,
    synthetic_raw_export,
    write_raw_export,
)
from hospfed.common.datasets.heart_schema import FED_HEART_RAW_SCHEMA, FED_HEART_SCHEMA
from hospfed.common.errors import DataError, IdentifierLeakError
from hospfed.common.schema import dumps_schema, load_schema


def prepared(tmp_path, frame, name="site", **options):
    key = generate_key_file(tmp_path / f"{name}.key")
    raw = tmp_path / f"{name}.csv"
    write_raw_export(frame, raw)
    out = tmp_path / f"{name}.hfd"
    result = prepare_export(raw, out, schema=FED_HEART_RAW_SCHEMA, key=key, **options)
    return result, out, key


@pytest.mark.parametrize("hospital", HOSPITALS)
def test_training_data_from_the_encrypted_file_equals_the_embedded_data(
    tmp_path, hospital
):
    _, out, _ = prepared(tmp_path, hospital_raw_export(hospital, seed=3))
    settings = NodeSettings(hospital=hospital, data=out, key_file=tmp_path / "site.key")
    loaded = load_hospital_data(settings)
    reference = load_hospital(hospital)
    inputs = loaded.inputs(FED_HEART_TASK)  # the run's task, as a round sends it
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(inputs, name), getattr(reference, name))
    assert loaded.schema.fingerprint() == FED_HEART_SCHEMA.fingerprint()


def test_planted_identifiers_never_reach_the_prepared_file(tmp_path):
    raw = synthetic_raw_export(10_000, seed=11)
    planted = planted_identifiers(raw)
    result, out, key = prepared(tmp_path, raw, k=1)  # no k-anonymity: every row
    frame, metadata = read_encrypted_frame(out, key)
    assert len(frame) == 10_000 and result.report.rows_out == 10_000
    cells = frame.astype(str).to_numpy()
    everything = set(cells.ravel())
    digit_runs = {run for cell in everything for run in re.findall(r"\d{5,}", cell)}
    for column, values in planted.items():
        assert not values & everything, column
        digits = {re.sub(r"\D", "", v) for v in values} - {""}
        assert not {d for d in digits if len(d) >= 5} & digit_runs, column
    # Row by row: none of a patient's own identifiers, in any spelling, is
    # left in any of that patient's de-identified cells.
    raw_text = raw[list(planted)].astype(str).to_numpy()
    for row, own in zip(cells, raw_text, strict=True):
        line = " | ".join(row)
        for value in own:
            if value in ("", "nan", "<NA>"):
                continue
            assert value not in line
            digits = re.sub(r"\D", "", value)
            if len(digits) >= 5:
                assert digits not in line
    assert all(v not in str(metadata) for v in list(planted["ssn"])[:100])


def test_round_trip_gives_back_exactly_the_prepared_frame(tmp_path):
    raw = hospital_raw_export("hungary", seed=1)
    _, out, key = prepared(tmp_path, raw)
    again = open_prepared(out, key)
    from hospfed.client.deid import deidentify_checked

    expected, _ = deidentify_checked(
        read_raw_export(tmp_path / "site.csv", FED_HEART_RAW_SCHEMA),
        FED_HEART_RAW_SCHEMA,
        deid_secrets(key),
    )
    pd.testing.assert_frame_equal(again.frame, expected.reset_index(drop=True))
    assert again.schema.fingerprint() == FED_HEART_SCHEMA.fingerprint()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


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


def test_report_counts_what_was_done(tmp_path):
    result, _, _ = prepared(tmp_path, hospital_raw_export("va", seed=2))
    report = result.report
    assert report.rows_in == report.rows_out == 200 and report.rows_suppressed == 0
    schema = FED_HEART_RAW_SCHEMA
    assert set(report.dropped) == {c.name for c in schema.columns if c.action == "drop"}
    assert {"patient_name", "ssn", "phone", "email"} <= set(report.dropped)
    assert report.pseudonymised == ("mrn",)
    lines = "\n".join(report.to_lines())
    assert "k-anonymity over" in lines and "rows: 200 in, 200 out" in lines


def test_k_suppression_removes_rows_in_small_groups(tmp_path):
    key = generate_key_file(tmp_path / "site.key")
    write_raw_export(hospital_raw_export("cleveland"), tmp_path / "raw.csv")
    result = prepare_export(
        tmp_path / "raw.csv",
        tmp_path / "site.hfd",
        schema=with_quasi_identifiers("age", "sex"),
        key=key,
        k=2,
    )
    assert result.report.rows_suppressed > 0
    assert result.report.k_anonymity.min_group_size >= 2
    frame, _ = read_encrypted_frame(tmp_path / "site.hfd", key)
    assert len(frame) == 303 - result.report.rows_suppressed


def test_pseudonyms_are_keyed_and_stable_per_hospital_key(tmp_path):
    raw = hospital_raw_export("switzerland")
    _, out_a, key = prepared(tmp_path, raw, name="a")
    write_raw_export(raw, tmp_path / "b.csv")
    prepare_export(
        tmp_path / "b.csv", tmp_path / "b.hfd", schema=FED_HEART_RAW_SCHEMA, key=key
    )
    _, out_c, other_key = prepared(tmp_path, raw, name="c")
    a = read_encrypted_frame(out_a, key)[0]["mrn"]
    b = read_encrypted_frame(tmp_path / "b.hfd", key)[0]["mrn"]
    c = read_encrypted_frame(out_c, other_key)[0]["mrn"]
    assert a.tolist() == b.tolist()  # same hospital key: joinable
    assert not set(a) & set(c)  # another key: unlinkable
    assert not set(a) & set(raw["mrn"])


def test_a_passphrase_works_instead_of_a_key_file(tmp_path, monkeypatch):
    raw = tmp_path / "raw.parquet"
    write_raw_export(hospital_raw_export("va"), raw)
    passphrase = Passphrase("correct horse battery staple")
    prepare_export(
        raw, tmp_path / "va.hfd", schema=FED_HEART_RAW_SCHEMA, key=passphrase
    )
    monkeypatch.setenv("VA_PASSPHRASE", "correct horse battery staple")
    settings = NodeSettings(
        hospital="va", data=tmp_path / "va.hfd", passphrase_env="VA_PASSPHRASE"
    )
    assert len(load_hospital_data(settings).inputs(FED_HEART_TASK).y_train) == 85


def test_an_identifier_left_in_a_kept_column_fails_closed(tmp_path):
    # A hospital's own schema keeps a text column; one row carries a phone
    # number in it. prepare must refuse and write nothing.
    mine = replace(
        FED_HEART_RAW_SCHEMA,
        columns=tuple(
            replace(c, name="referral", pattern=".*", deid="keep")
            if c.name == "state"
            else c
            for c in FED_HEART_RAW_SCHEMA.columns
        ),
    )
    schema_path = tmp_path / "mine.json"
    schema_path.write_text(dumps_schema(mine))
    schema = load_schema(schema_path)
    raw = hospital_raw_export("va").rename(columns={"state": "referral"})
    raw["referral"] = "clinic"
    raw.loc[17, "referral"] = "call dr at 562-555-0142"
    raw.to_parquet(tmp_path / "raw.parquet")
    key = generate_key_file(tmp_path / "site.key")
    with pytest.raises(IdentifierLeakError, match="referral") as info:
        prepare_export(
            tmp_path / "raw.parquet", tmp_path / "out.hfd", schema=schema, key=key
        )
    assert "562-555-0142" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "mine.json",
        "raw.parquet",
        "site.key",
    ]


def test_missing_or_unreadable_raw_exports_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_raw_export(tmp_path / "nope.csv", FED_HEART_RAW_SCHEMA)
    (tmp_path / "bad.csv").write_bytes(b'mrn,patient_name\n"unterminated\n')
    with pytest.raises(DataError, match="line 2: a double quote .* never closed"):
        read_raw_export(tmp_path / "bad.csv", FED_HEART_RAW_SCHEMA)
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(DataError, match="is not a file"):
        read_raw_export(tmp_path / "folder.csv", FED_HEART_RAW_SCHEMA)


def test_the_long_lived_process_reads_without_keeping_a_copy(tmp_path):
    """hospfed-client start and its worker: the decrypted data is theirs to drop."""
    from hospfed.client.data import _load, read_hospital_data

    _, out, _ = prepared(tmp_path, hospital_raw_export("switzerland", seed=1))
    settings = NodeSettings(
        hospital="switzerland", data=out, key_file=tmp_path / "site.key"
    )
    before = _load.cache_info().currsize
    first, second = read_hospital_data(settings), read_hospital_data(settings)
    assert first is not second
    assert _load.cache_info().currsize == before
    np.testing.assert_array_equal(
        first.inputs(FED_HEART_TASK).x_train, second.inputs(FED_HEART_TASK).x_train
    )
