"""Tests of hospfed.client.deid.residual: the residual-identifier scan."""

import pandas as pd
import pytest

from hospfed.client.deid import (
    Finding,
    check_residual_identifiers,
    deidentify,
    deidentify_checked,
    scan_residual_identifiers,
)
from hospfed.common.errors import IdentifierLeakError
from hospfed.common.schema import Column, DatasetSchema
from tests.client.deid.exports import NOTES_SCHEMA, SECRETS, name_schema


def test_residual_scan_names_the_column_and_kind_never_the_value():
    schema = DatasetSchema(
        "comments-raw",
        1,
        (Column("comment", "string", nullable=True), Column("outcome", "int", "label")),
        "outcome",
    )
    frame = pd.DataFrame(
        {"comment": ["fine", "call 555-867-5309", None], "outcome": [0, 1, 0]}
    )
    out, _ = deidentify(frame, schema, SECRETS)
    findings = scan_residual_identifiers(out, schema)
    assert findings == [Finding("comment", "phone", 1, row=1)]
    with pytest.raises(
        IdentifierLeakError, match=r"column 'comment'.*phone, first at row 1"
    ) as info:
        check_residual_identifiers(out, schema)
    assert "555" not in str(info.value)
    with pytest.raises(IdentifierLeakError):
        deidentify_checked(frame, schema, SECRETS)


def test_residual_scan_finds_a_rows_own_name_left_in_its_note(raw, prepared):
    out, _ = prepared
    assert scan_residual_identifiers(out, NOTES_SCHEMA, raw_identifier_values=raw) == []
    leaked = out.copy()
    leaked.loc[5, "note"] = f"seen by the team; {raw['patient_name'][5]}"
    leaked.loc[6, "note"] = f"moved to {raw['city'][6]}"
    findings = scan_residual_identifiers(
        leaked, NOTES_SCHEMA, raw_identifier_values=raw
    )
    assert {(f.column, f.source, f.rows) for f in findings if f.source} == {
        ("note", "patient_name", 1),
        ("note", "city", 1),
    }
    message = findings[0].describe()
    assert raw["patient_name"][5] not in message and raw["city"][6] not in message


def test_a_kept_column_holding_the_rows_own_value_fails_closed():
    schema = DatasetSchema(
        "areas-raw",
        1,
        (
            Column("city", "string", "identifier", phi="geographic"),
            Column("area", "string", "quasi_identifier"),
            Column("outcome", "int", "label"),
        ),
        "outcome",
    )
    frame = pd.DataFrame(
        {
            "city": ["Lakewood", "Parma", "Euclid"],
            "area": ["west", " PARMA ", "east"],  # the second row's own city
            "outcome": [0, 1, 0],
        }
    )
    with pytest.raises(IdentifierLeakError, match="column 'area'.*'city'") as info:
        deidentify_checked(frame, schema, SECRETS, k=1)
    assert "arma" not in str(info.value).lower()


def test_a_place_overlapping_a_false_match_is_scrubbed_or_refused_in_any_note():
    frame = pd.DataFrame(
        {
            "patient_name": ["Ann Lee"],
            "city": ["Walla Walla"],
            "note": ["xWalla Walla Walla, café"],
            "outcome": [0],
        }
    )
    try:
        out, _ = deidentify_checked(frame, name_schema(), SECRETS)
    except IdentifierLeakError:
        return
    assert "walla walla" not in out["note"][0].lower()


def _sites(reviewed=None):
    return DatasetSchema(
        "sites-raw",
        1,
        (
            Column("site", "string", reviewed=reviewed),
            Column("outcome", "int", "label"),
        ),
        "outcome",
    )


def test_place_names_in_a_reviewed_column_pass_and_identifiers_still_do_not():
    """A kept column of the consortium's site names: the reviewer's call."""
    frame = pd.DataFrame(
        {
            "site": ["Cleveland", "Springfield", "Cleveland", "Hungary"],
            "outcome": [0, 1, 0, 1],
        }
    )
    assert scan_residual_identifiers(frame, _sites())  # a person or place name
    reviewed = _sites("the consortium's public site names, not the patients'")
    assert scan_residual_identifiers(frame, reviewed) == []
    out, _ = deidentify_checked(frame, reviewed, SECRETS, k=1)
    assert list(out["site"]) == list(frame["site"])
    leaky = frame.assign(site=["Cleveland", "123-45-6789", "Cleveland", "Hungary"])
    with pytest.raises(IdentifierLeakError, match="column 'site'"):
        deidentify_checked(leaky, reviewed, SECRETS, k=1)
