"""Tests of hospfed.client.deid.pipeline: deidentify and deidentify_checked."""

import re

import pandas as pd
import pytest

from hospfed.client.deid import (
    Finding,
    deidentify,
    deidentify_checked,
    scan_residual_identifiers,
)
from hospfed.common.datasets.heart import CLINICAL_COLUMNS
from hospfed.common.errors import ConfigError, DataError, SchemaError
from hospfed.common.schema import Column, DatasetSchema
from tests.client.deid.exports import NOTES_OUT, NOTES_SCHEMA, SECRETS


def test_output_has_the_deidentified_schema_and_keeps_row_order(raw, prepared):
    out, report = prepared
    assert tuple(out.columns) == NOTES_OUT.column_names
    NOTES_OUT.validate(out)
    pd.testing.assert_frame_equal(
        out[list(CLINICAL_COLUMNS[1:])], raw[list(CLINICAL_COLUMNS[1:])]
    )
    assert report.rows_in == report.rows_out == len(raw)


def test_direct_identifiers_are_dropped(prepared):
    out, report = prepared
    dropped = {
        "patient_name",
        "ssn",
        "street_address",
        "city",
        "phone",
        "email",
        "health_plan_id",
    }
    assert dropped.isdisjoint(out.columns)
    assert set(report.dropped) == dropped


def test_text_columns_may_be_python_strings(raw, prepared):
    plain = raw.copy()
    for column in NOTES_SCHEMA.text_columns:
        plain[column] = plain[column].astype(object)
    out, _ = deidentify_checked(plain, NOTES_SCHEMA, SECRETS, k=1)
    assert out["note"].equals(prepared[0]["note"])
    assert out["mrn"].equals(prepared[0]["mrn"])


def test_planted_identifiers_appear_nowhere_in_the_output(raw, prepared):
    out, _ = prepared
    cells = "\n".join(out[c].astype(str).str.cat(sep="\n") for c in out.columns)
    identifiers = [
        "mrn",
        "patient_name",
        "ssn",
        "birth_date",
        "admission_date",
        "street_address",
        "city",
        "zip",
        "phone",
        "email",
        "health_plan_id",
    ]
    for column in identifiers:
        for value in raw[column].dropna().astype(str).unique():
            assert value not in cells, f"a value of {column} survived"
            digits = re.sub(r"\D", "", value)
            if len(digits) >= 5:
                assert digits not in cells, (
                    f"the digits of a value of {column} survived"
                )


def test_deidentify_refuses_a_deidentified_schema_and_a_bad_k(raw):
    with pytest.raises(ConfigError, match="de-identified data"):
        deidentify(raw, NOTES_OUT, SECRETS)
    with pytest.raises(ConfigError, match="k must be a positive"):
        deidentify(raw, NOTES_SCHEMA, SECRETS, k=0)


def test_the_result_does_not_depend_on_the_block_size(raw, prepared, monkeypatch):
    # Text columns are de-identified and scanned a block of rows at a time.
    monkeypatch.setattr("hospfed.client.deid.blocks._ROWS_PER_BLOCK", 300)
    out, report = deidentify_checked(raw, NOTES_SCHEMA, SECRETS, k=1)
    pd.testing.assert_frame_equal(out, prepared[0])
    assert report == prepared[1]
    leaked = out.copy()
    for row in (5, 1500):  # in the first and the sixth block
        leaked.loc[row, "note"] = f"seen by {raw['patient_name'][row]}"
    findings = scan_residual_identifiers(
        leaked, NOTES_SCHEMA, raw_identifier_values=raw
    )
    assert [f for f in findings if f.source] == [
        Finding("note", "identifier_value", 2, "patient_name")
    ]
    assert {(f.kind, f.row) for f in findings if not f.source} == {("name", 5)}


def test_a_contract_violation_is_the_error_even_if_deidentifying_fails_too():
    schema = DatasetSchema(
        "visits-raw",
        1,
        (
            Column("mrn", "string", "identifier", deid="pseudonymise", phi="mrn"),
            Column("seen", "date", "date", deid="shift"),
            Column("outcome", "int", "label"),
        ),
        "outcome",
    )
    frame = pd.DataFrame(
        {
            "mrn": pd.array(["00012345", None], "string[pyarrow]"),
            "seen": ["2001-02-03", "2001-02-04"],
            "outcome": [0, 1],
        }
    )
    with pytest.raises(DataError, match="no patient key"):
        deidentify(frame, schema, SECRETS)
    with pytest.raises(SchemaError, match="column 'mrn': 1 missing values"):
        deidentify_checked(frame, schema, SECRETS)


def test_deidentify_checked_reports_a_broken_contract_first(raw, prepared):
    # A de-identified schema is refused, but a broken contract is named first.
    with pytest.raises(SchemaError, match="unexpected columns"):
        deidentify_checked(raw, NOTES_OUT, SECRETS)
    with pytest.raises(ConfigError, match="de-identified data"):
        deidentify_checked(prepared[0], NOTES_OUT, SECRETS)
