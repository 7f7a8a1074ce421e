"""Tests of hospfed.client.deid.columns: pseudonyms, dates, ages and ZIP codes."""

import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa

from hospfed.client.deid import RESTRICTED_ZIP3, deidentify, pseudonymise, zip3
from hospfed.common.schema import PSEUDONYM_PATTERN, Column, DatasetSchema
from tests.client.deid.exports import NOTES_SCHEMA, OTHER_SECRETS, SECRETS


def test_pseudonyms_are_keyed_deterministic_and_letters_only(raw, prepared):
    out, _ = prepared
    assert out["mrn"].str.fullmatch(PSEUDONYM_PATTERN).all()
    again, _ = deidentify(raw, NOTES_SCHEMA, SECRETS, k=1)
    assert (again["mrn"] == out["mrn"]).all()
    other, _ = deidentify(raw, NOTES_SCHEMA, OTHER_SECRETS, k=1)
    assert not (other["mrn"] == out["mrn"]).any()
    assert out["mrn"].nunique() == raw["mrn"].nunique()


def test_the_same_value_gets_the_same_pseudonym_and_missing_stays_missing():
    values = pa.array(["00012345", "00099999", "00012345", None])
    pseudonyms = pseudonymise(values, SECRETS.pseudonym).to_pylist()
    assert pseudonyms[0] == pseudonyms[2] != pseudonyms[1]
    assert pseudonyms[3] is None


def test_a_pseudonym_is_not_a_plain_hash_of_the_value():
    value = "00012345"
    pseudonym = pseudonymise(pa.array([value]), SECRETS.pseudonym)[0].as_py()
    letters = str.maketrans("0123456789abcdef", "abcdefghijklmnop")
    for digest in (
        hashlib.sha256(value.encode()).hexdigest(),
        hashlib.sha256(SECRETS.pseudonym + value.encode()).hexdigest(),
    ):
        assert digest[:24].translate(letters) not in pseudonym


def test_dates_keep_only_their_year(raw, prepared):
    out, report = prepared
    born = pd.to_datetime(raw["birth_date"].astype(str)).dt.year.to_numpy()
    admitted = pd.to_datetime(raw["admission_date"].astype(str)).dt.year.to_numpy()
    old = (raw["age"] > 89).to_numpy()
    births = out["birth_date"].astype(int).to_numpy()
    # Over 89: the birth year moves into the "90+" band, 90 years before
    # admission, so the two years no longer give the age away.
    reference = np.maximum(admitted, born + raw["age"].to_numpy().astype(int))
    assert (births == np.maximum(born, reference - 90)).all()
    assert (reference[old] - births[old] == 90).all()
    assert (out["age"][old] == 90).all()
    assert report.dates_banded == (born < reference - 90).sum() > 0
    assert (out["admission_date"].to_numpy() == admitted).all()
    assert out["admission_date"].between(1984, 1990).all()


def test_a_birth_year_kept_alone_is_banded_by_the_age_it_gives_away():
    schema = DatasetSchema(
        "born-raw",
        1,
        (
            Column("born", "date", "date", deid="year", phi="date"),
            Column("age", "int", "feature", deid="age_cap", phi="age"),
            Column("outcome", "int", "label"),
        ),
        "outcome",
    )
    frame = pd.DataFrame(
        {"born": ["1922-05-01", "1950-01-02"], "age": [93, 60], "outcome": [0, 1]}
    )
    out, report = deidentify(frame, schema, SECRETS, k=1)
    # 1922 + 93 = 2015: the reference year; 90 before it is 1925.
    assert out["born"].tolist() == [1925, 1950]
    assert out["age"].tolist() == [90, 60]
    assert report.dates_banded == 1 and report.ages_capped == 1


def visit_schema() -> DatasetSchema:
    return DatasetSchema(
        "visits-raw",
        1,
        (
            Column("mrn", "string", "identifier", deid="pseudonymise"),
            Column("admitted", "date", "date", deid="shift"),
            Column("discharged", "date", "date", deid="shift"),
            Column("outcome", "int", "label"),
        ),
        "outcome",
    )


def test_date_shift_moves_dates_but_keeps_intervals_within_a_patient():
    visits = pd.DataFrame(
        {
            "mrn": ["00000001", "00000001", "00000002", "00000003"],
            "admitted": ["2020-01-01", "2020-03-01", "2020-01-01", "2020-01-01"],
            "discharged": ["2020-01-05", "2020-03-11", "2020-01-02", "2020-01-09"],
            "outcome": [0, 1, 0, 1],
        }
    )
    out, report = deidentify(visits, visit_schema(), SECRETS, k=1)
    admitted = pd.to_datetime(visits["admitted"])
    shift = (out["admitted"] - admitted).dt.days
    assert (shift != 0).all() and shift.abs().le(365).all()
    assert shift[0] == shift[1]  # one patient, one offset
    assert len(set(shift)) > 1  # patients get different offsets
    stay = (out["discharged"] - out["admitted"]).dt.days
    assert stay.tolist() == [4, 10, 1, 8]
    again, _ = deidentify(visits, visit_schema(), SECRETS, k=1)
    assert (again["admitted"] == out["admitted"]).all()
    assert ("admitted", "shift") in report.generalised


def test_ages_over_89_become_90(raw, prepared):
    out, report = prepared
    assert out["age"].max() == 90
    old = raw["age"] > 89
    assert (out.loc[old, "age"] == 90).all()
    assert (out.loc[~old, "age"] == raw.loc[~old, "age"]).all()
    assert report.ages_capped == int(old.sum())


def test_zip_codes_keep_three_digits_and_sparse_areas_become_000():
    zips, restricted = zip3(
        pa.array(["44101", "03601", "89012", "02139", None, "9"]), RESTRICTED_ZIP3
    )
    assert zips.to_pylist() == ["441", "000", "000", "021", None, "000"]
    assert restricted == 3


def test_raw_zip_codes_are_cut_in_the_output(raw, prepared):
    out, report = prepared
    assert out["zip"].str.fullmatch("[0-9]{3}").all()
    assert out["zip"][0] == out["zip"][1] == "000"
    assert report.zip3_list == "census-2000"
