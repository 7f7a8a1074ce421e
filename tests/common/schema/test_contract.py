import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from hospfed.common.datasets.heart import CLINICAL_SCHEMA, load_clinical_tables
from hospfed.common.errors import SchemaError
from hospfed.common.schema import Column, DatasetSchema


@pytest.fixture
def table():
    return load_clinical_tables()["cleveland"].copy()


def test_real_hospital_table_meets_the_contract(table):
    CLINICAL_SCHEMA.validate(table)


def test_missing_column_is_named(table):
    with pytest.raises(SchemaError, match=r"missing columns \['chol'\]"):
        CLINICAL_SCHEMA.validate(table.drop(columns=["chol"]))


def test_an_unexpected_column_is_placed_never_named(table):
    # A file whose header is a patient's row must not show it in the error.
    table["Jane O'Neil"] = "123-45-6789"
    with pytest.raises(
        SchemaError, match=r"1 unexpected columns \(at positions 15 "
    ) as info:
        CLINICAL_SCHEMA.validate(table)
    assert "Jane" not in str(info.value)


def test_out_of_range_value_is_named(table):
    table.loc[3, "age"] = 250
    with pytest.raises(SchemaError, match=r"column 'age': 1 values outside \[0, 120\]"):
        CLINICAL_SCHEMA.validate(table)


def test_bad_level_is_named(table):
    table.loc[0, "cp"] = 9
    with pytest.raises(SchemaError, match="column 'cp'.*allowed levels"):
        CLINICAL_SCHEMA.validate(table)


def test_missing_value_in_a_required_column(table):
    table.loc[0, "num"] = np.nan
    with pytest.raises(SchemaError, match="column 'num': 1 missing values"):
        CLINICAL_SCHEMA.validate(table)


def test_text_in_a_numeric_column(table):
    table["chol"] = table["chol"].astype(str)
    with pytest.raises(SchemaError, match="column 'chol': expected numbers"):
        CLINICAL_SCHEMA.validate(table)


def test_fingerprint_is_stable_and_changes_with_the_contract():
    a = DatasetSchema("s", 1, (Column("x", "float"), Column("y", "int", "label")), "y")
    b = DatasetSchema("s", 1, (Column("x", "float"), Column("y", "int", "label")), "y")
    c = DatasetSchema("s", 2, (Column("x", "float"), Column("y", "int", "label")), "y")
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_label_must_be_a_column():
    with pytest.raises(ValueError, match="label 'z' not a column"):
        DatasetSchema("s", 1, (Column("x", "float"),), "z")


def test_whole_numbers_required_for_int_columns():
    schema = DatasetSchema("s", 1, (Column("n", "int", "label"),), "n")
    with pytest.raises(SchemaError, match="expected whole numbers"):
        schema.validate(pd.DataFrame({"n": [1.0, 2.5]}))


# --- string and date columns, de-identification rules, the schema contract ---

from hospfed.common.datasets import (  # noqa: E402
    BUILTIN_SCHEMAS,
    FED_HEART_RAW_SCHEMA,
    FED_HEART_SCHEMA,
)
from hospfed.common.errors import ConfigError  # noqa: E402
from hospfed.common.schema import PSEUDONYM_PATTERN, parse_dates  # noqa: E402

CLINICAL_FINGERPRINT = (
    "5ee52058453ee71a2f648fa74438ddb44eda8e3fb36f07b5c558ebfce6d2a996"
)


def test_existing_fingerprints_did_not_change():
    assert CLINICAL_SCHEMA.fingerprint() == CLINICAL_FINGERPRINT


def test_fingerprint_is_canonical():
    implicit = DatasetSchema(
        "s", 1, (Column("x", "float", minimum=0), Column("y", "int", "label")), "y"
    )
    explicit = DatasetSchema(
        "s",
        1,
        (Column("x", "float", minimum=0.0, deid="keep"), Column("y", "int", "label")),
        "y",
    )
    assert implicit.fingerprint() == explicit.fingerprint()
    assert implicit.describe_difference(explicit) is None


def text_schema(**options):
    return DatasetSchema(
        "t", 1, (Column("code", "string", **options), Column("y", "int", "label")), "y"
    )


def test_string_columns_must_hold_text():
    frame = pd.DataFrame({"code": [12345, 678], "y": [0, 1]})
    with pytest.raises(
        SchemaError, match="column 'code': expected text.*leading zeros"
    ):
        text_schema().validate(frame)
    text_schema().validate(
        pd.DataFrame({"code": ["a", None], "y": [0, 1]})
        .astype({"code": "string[pyarrow]"})
        .fillna({"code": "b"})
    )


def test_string_pattern_mismatches_are_counted_not_shown():
    schema = text_schema(pattern="[0-9]{5}")
    frame = pd.DataFrame({"code": ["44101", "4410", "abcde"], "y": [0, 1, 0]})
    with pytest.raises(
        SchemaError, match=r"column 'code': 2 values do not match"
    ) as info:
        schema.validate(frame)
    assert "abcde" not in str(info.value)


def test_missing_values_are_neither_pattern_nor_date_mismatches():
    schema = DatasetSchema(
        "m",
        1,
        (
            Column("code", "string", nullable=True, pattern="[0-9]{5}"),
            Column("seen", "date", "date", nullable=True),
            Column("y", "int", "label"),
        ),
        "y",
    )
    frame = pd.DataFrame(
        {
            "code": ["44101", None, None],
            "seen": [None, "1999-12-31", None],
            "y": [0, 1, 0],
        }
    )
    schema.validate(frame)  # Python strings with None
    schema.validate(
        frame.astype({"code": "string[pyarrow]", "seen": "string[pyarrow]"})
    )
    frame.loc[2, ["code", "seen"]] = ["4410", "31.12.1999"]
    with pytest.raises(SchemaError, match=r"column 'code': 1 values do not match"):
        schema.validate(frame)
    with pytest.raises(SchemaError, match=r"column 'seen': 1 values are not dates"):
        schema.validate(frame.drop(columns="code").assign(code="44101"))


def test_text_in_several_arrow_chunks_is_checked_as_a_whole():
    chunks = pa.chunked_array([["44101", "abc"], [], ["4410", None, "44102"]])
    frame = pd.DataFrame(
        {"code": pd.arrays.ArrowStringArray(chunks), "y": [0, 1, 0, 1, 0]}
    )
    with pytest.raises(SchemaError, match=r"column 'code': 2 values do not match"):
        text_schema(pattern="[0-9]{5}", nullable=True).validate(frame)


def test_dates_parse_with_the_declared_format():
    schema = DatasetSchema(
        "d",
        1,
        (
            Column("seen", "date", "date", date_format="%d.%m.%Y"),
            Column("y", "int", "label"),
        ),
        "y",
    )
    schema.validate(pd.DataFrame({"seen": ["31.12.1999", "01.02.2000"], "y": [0, 1]}))
    with pytest.raises(
        SchemaError,
        match=r"column 'seen': 1 values are not dates in the format '%d.%m.%Y'",
    ):
        schema.validate(
            pd.DataFrame({"seen": ["31.12.1999", "1999-12-31"], "y": [0, 1]})
        )
    parsed = parse_dates(pd.Series(["31.12.1999", None]), "%d.%m.%Y")
    assert parsed[0] == pd.Timestamp("1999-12-31") and pd.isna(parsed[1])


@pytest.mark.parametrize(
    ("column", "message"),
    [
        (
            Column("ssn", "string", "identifier", deid="keep"),
            "column 'ssn'.*cannot use deid 'keep'",
        ),
        (
            Column("note", "string", "free_text", deid="keep"),
            "column 'note'.*'scrub' or 'drop'",
        ),
        (
            Column("seen", "date", "feature"),
            "column 'seen': a date .* cannot use deid 'keep'",
        ),
        (Column("seen", "date", "quasi_identifier", deid="keep"), "column 'seen'"),
        (
            Column("zip", "string", "identifier", phi="zip", deid="pseudonymise"),
            "'drop' or 'zip3'",
        ),
        (Column("age", "int", "quasi_identifier", phi="age"), "'drop' or 'age_cap'"),
        (
            Column("name", "string", "identifier", phi="name", deid="zip3"),
            "'drop' or 'pseudonymise'",
        ),
    ],
)
def test_unsafe_deidentification_is_refused(column, message):
    with pytest.raises(ConfigError, match=message):
        DatasetSchema("u", 1, (column, Column("y", "int", "label")), "y")


def test_actions_must_fit_the_kind_and_options_the_column():
    with pytest.raises(ConfigError, match="deid 'year' needs kind date"):
        Column("seen", "string", "date")
    with pytest.raises(ConfigError, match="unknown role 'secret'"):
        Column("x", "string", "secret")
    with pytest.raises(ConfigError, match="pattern is only for kind 'string'"):
        Column("x", "int", pattern="[0-9]")
    with pytest.raises(ConfigError, match="not a valid RE2"):
        Column("x", "string", pattern="(unclosed")
    with pytest.raises(ConfigError, match="does not write and read back a whole date"):
        Column("x", "date", "date", date_format="%Y")


def test_shifting_dates_needs_a_pseudonymised_patient_key():
    with pytest.raises(ConfigError, match="needs a patient key"):
        DatasetSchema(
            "s",
            1,
            (Column("seen", "date", "date", deid="shift"), Column("y", "int", "label")),
            "y",
        )


def test_the_label_must_be_kept():
    with pytest.raises(ConfigError, match="the label must be kept"):
        DatasetSchema("s", 1, (Column("y", "int", "label", deid="drop"),), "y")


def test_raw_heart_schema_deidentifies_to_the_run_schema():
    out = FED_HEART_RAW_SCHEMA.deidentified()
    assert out == FED_HEART_SCHEMA
    assert (out.name, out.version, out.stage) == (
        "fed-heart-disease",
        2,
        "deidentified",
    )
    # Only the join key and the admission year besides the model's features:
    # no birth date, state, ZIP code or free text.
    assert out.column_names[:3] == ("mrn", "admission_date", "age")
    assert out.column("mrn").pattern == PSEUDONYM_PATTERN
    assert out.column("admission_date").kind == "int"
    assert out.column("age").maximum == 90
    assert out.column("age").role == "feature"
    assert out.quasi_identifiers == ("admission_date",)
    assert FED_HEART_RAW_SCHEMA.column("note").action == "drop"
    assert out.deidentified() is out
    assert set(BUILTIN_SCHEMAS) == {"fed-heart-disease-raw", "fed-heart-disease"}
    assert FED_HEART_RAW_SCHEMA.text_columns[:3] == ("mrn", "patient_name", "ssn")
    assert FED_HEART_RAW_SCHEMA.patient_key == "mrn"


def test_a_deidentified_schema_cannot_hold_identifiers():
    with pytest.raises(ConfigError, match="cannot have identifier columns"):
        DatasetSchema(
            "x",
            1,
            (Column("ssn", "string", "identifier"), Column("y", "int", "label")),
            "y",
            stage="deidentified",
        )


def test_schema_difference_names_the_first_column_that_differs():
    run = FED_HEART_SCHEMA
    columns = tuple(
        Column("chol", "int", minimum=0, maximum=1000, nullable=True)
        if c.name == "chol"
        else c
        for c in run.columns
    )
    mine = DatasetSchema(run.name, run.version, columns, run.label, stage=run.stage)
    assert mine.describe_difference(run, other_name="the run's schema") == (
        "column 'chol': kind int here, float in the run's schema"
    )
    with pytest.raises(
        SchemaError, match="column 'chol': kind int here, float in the run's schema"
    ):
        mine.check_matches(run)
    fewer = DatasetSchema(
        run.name,
        run.version,
        run.columns[:-2] + run.columns[-1:],
        run.label,
        stage=run.stage,
    )
    assert (
        fewer.describe_difference(run)
        == "column 'thal' is missing here but in the other schema"
    )
    newer = DatasetSchema(run.name, 3, run.columns, run.label, stage=run.stage)
    assert newer.describe_difference(run) == "version 3 here, 2 in the other schema"
    run.check_matches(FED_HEART_RAW_SCHEMA.deidentified())
