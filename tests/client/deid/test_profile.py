"""Tests of hospfed.client.deid.profile and the structured-column rules.

A schema can be wrong: a kept column is profiled on the data, and one that
looks like an identifier is refused unless the schema says why it is not;
k-anonymity fails closed by default; ages over 89 take the dates that give
them away into the "90+" band.
"""

import numpy as np
import pandas as pd
import pytest

from hospfed.client.deid import deidentify, deidentify_checked
from hospfed.common.errors import ConfigError, IdentifierLeakError
from hospfed.common.schema import Column, DatasetSchema, loads_schema
from tests.client.deid.exports import SECRETS

ROWS = 60
RNG = np.random.default_rng(5)


def schema_with(column: Column) -> DatasetSchema:
    return DatasetSchema("audit-raw", 1, (column, Column("y", "int", "label")), "y")


def frame_with(values) -> pd.DataFrame:
    return pd.DataFrame({"x": values, "y": RNG.integers(0, 2, len(values))})


def ymd() -> np.ndarray:
    return (
        RNG.integers(1930, 2020, ROWS) * 10_000
        + RNG.integers(1, 13, ROWS) * 100
        + RNG.integers(1, 29, ROWS)
    )


SHAPED = {
    "zip codes": ("int", lambda: RNG.integers(10_000, 99_999, ROWS), "ZIP codes"),
    "ssns": ("int", lambda: RNG.integers(100_000_000, 899_999_999, ROWS), "SSNs"),
    "phones": (
        "float",
        lambda: RNG.integers(2_000_000_000, 9_999_999_999, ROWS).astype(float),
        "phone numbers",
    ),
    "yyyymmdd": ("int", ymd, "dates written yyyymmdd"),
    "row ids": ("int", lambda: np.arange(ROWS) + 7, "one value per row"),
    "category ids": ("category", lambda: np.arange(ROWS) % 60, "one value per row"),
}


@pytest.mark.parametrize("case", sorted(SHAPED))
def test_a_kept_numeric_column_shaped_like_an_identifier_is_refused(case):
    kind, values, shape = SHAPED[case]
    data = values()
    levels = tuple(float(v) for v in range(60)) if kind == "category" else None
    schema = schema_with(Column("x", kind, levels=levels))
    with pytest.raises(IdentifierLeakError, match=f"column 'x'.*{shape}") as info:
        deidentify_checked(frame_with(data), schema, SECRETS)
    message = str(info.value)
    assert "\n" not in message and "nothing was written" in message
    assert not any(str(int(v)) in message for v in data)


def test_an_age_over_89_kept_as_a_plain_feature_is_refused():
    schema = DatasetSchema(
        "ages-raw",
        1,
        (Column("age", "int", minimum=0, maximum=130), Column("y", "int", "label")),
        "y",
    )
    frame = pd.DataFrame({"age": [40, 101, 55] * 10, "y": [0, 1, 0] * 10})
    with pytest.raises(IdentifierLeakError, match="column 'age'.*ages over 89"):
        deidentify_checked(frame, schema, SECRETS)


def test_a_kept_string_column_with_one_value_per_row_is_refused():
    names = [f"Patient Number {i}" for i in range(ROWS)]
    schema = schema_with(Column("x", "string", "quasi_identifier"))
    with pytest.raises(IdentifierLeakError, match="column 'x'.*one value per row"):
        deidentify_checked(frame_with(names), schema, SECRETS, k=1)


def test_a_reviewed_column_is_kept_and_the_report_repeats_the_reason():
    reason = "daily step count from the wearable, not an identifier"
    schema = schema_with(Column("x", "int", reviewed=reason))
    steps = np.repeat(RNG.integers(10_000, 99_999, ROWS // 2), 2)
    out, report = deidentify_checked(frame_with(steps), schema, SECRETS)
    assert (out["x"].to_numpy() == steps).all()
    assert report.reviewed == (
        ("x", f"x: looks like ZIP codes (5 digits); kept as reviewed: {reason}"),
    )
    assert any(reason in line for line in report.to_lines())
    assert dict(report.columns)["x"] == f"kept as reviewed: {reason}"


def test_clinical_measurements_are_not_taken_for_identifiers():
    schema = DatasetSchema(
        "labs-raw",
        1,
        (
            Column("chol", "float"),
            Column("oldpeak", "float"),
            Column("visits", "int"),
            Column("y", "int", "label"),
        ),
        "y",
    )
    frame = pd.DataFrame(
        {
            "chol": RNG.integers(120, 400, ROWS).astype(float),
            "oldpeak": RNG.normal(1, 0.5, ROWS),  # distinct, but not whole
            "visits": RNG.integers(0, 9, ROWS),
            "y": RNG.integers(0, 2, ROWS),
        }
    )
    deidentify_checked(frame, schema, SECRETS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('reviewed = ""', "column 'x': reviewed needs a reason"),
        ('reviewed = "   "', "column 'x': reviewed needs a reason"),
        ("reviewed = true", "field 'reviewed' must be text"),
        ('deid = "drop"\nreviewed = "why"', "column 'x': reviewed is for kept"),
        ('deid = "sideways"', "column 'x': unknown deid 'sideways'"),
    ],
)
def test_bad_review_markers_are_one_line_errors_naming_the_column(text, message):
    document = f"""
format = "hospfed-schema"
format-version = 1
name = "s-raw"
version = 1
label = "y"

[[columns]]
name = "x"
kind = "int"
{text}

[[columns]]
name = "y"
kind = "int"
role = "label"
"""
    with pytest.raises(ConfigError, match=message) as info:
        loads_schema(document, fmt="toml")
    assert "\n" not in str(info.value)


def test_a_reviewed_marker_keeps_old_fingerprints_and_changes_its_own():
    plain = schema_with(Column("x", "int"))
    reviewed = schema_with(Column("x", "int", reviewed="steps"))
    assert "reviewed" not in plain.canonical()["columns"][0]
    assert plain.fingerprint() != reviewed.fingerprint()
    assert reviewed.deidentified().column("x").reviewed is None


# --- k-anonymity fails closed by default --------------------------------------


def zip_export(rows: int = 40) -> tuple[pd.DataFrame, DatasetSchema]:
    schema = DatasetSchema(
        "zips-raw",
        1,
        (
            Column("zip", "string", "identifier", deid="zip3", phi="zip"),
            Column("y", "int", "label"),
        ),
        "y",
    )
    zips = ["44101"] * (rows - 2) + ["90210", "10001"]
    frame = pd.DataFrame({"zip": zips, "y": [0, 1] * (rows // 2)})
    return frame, schema


def test_quasi_identifier_groups_below_5_fail_closed_unless_k_is_asked_for():
    frame, schema = zip_export()
    with pytest.raises(IdentifierLeakError, match=r"2 rows .* fewer than 5.*zip"):
        deidentify_checked(frame, schema, SECRETS)
    out, report = deidentify_checked(frame, schema, SECRETS, k=5)
    assert len(out) == 38 and report.rows_suppressed == 2
    out, report = deidentify_checked(frame, schema, SECRETS, k=1)
    assert len(out) == 40 and report.k_anonymity.min_group_size == 1


def test_a_name_declared_a_quasi_identifier_never_gets_through():
    frame = pd.DataFrame(
        {"name": [f"Ann Example{i}" for i in range(30)], "y": [0, 1] * 15}
    )
    schema = DatasetSchema(
        "names-raw",
        1,
        (Column("name", "string", "quasi_identifier"), Column("y", "int", "label")),
        "y",
    )
    with pytest.raises(IdentifierLeakError, match="column 'name'"):
        deidentify_checked(frame, schema, SECRETS)
    with pytest.raises(IdentifierLeakError, match="k-anonymity"):
        deidentify(frame, schema, SECRETS)


# --- the report ---------------------------------------------------------------


def test_the_report_counts_removed_values_per_safe_harbor_category():
    frame, schema = zip_export()
    _, report = deidentify_checked(frame, schema, SECRETS, k=1)
    assert dict(report.removed) == {"zip": 40}
    assert dict(report.columns) == {
        "zip": "ZIP code cut to 3 digits (000 in restricted areas)",
        "y": "kept (profiled: no identifier shape)",
    }
