"""Tests of hospfed.client.deid.kanon: k-anonymity and row suppression."""

import pandas as pd

from hospfed.client.deid import deidentify, deidentify_checked, k_anonymity
from tests.client.deid.exports import NOTES_OUT, NOTES_SCHEMA, SECRETS


def test_k_anonymity_on_a_hand_checked_frame():
    frame = pd.DataFrame(
        {
            "sex": [1, 1, 1, 0, 0, 0, 0],
            "zip": ["441", "441", "442", "441", "441", "441", None],
        }
    )
    report, sizes = k_anonymity(frame, ["sex", "zip"], k=2)
    assert sizes.tolist() == [2, 2, 1, 3, 3, 3, 1]
    assert (report.min_group_size, report.groups, report.rows_below_k) == (1, 4, 2)


def one_patient_alone(raw: pd.DataFrame, row: int) -> pd.DataFrame:
    """300 rows in 3 groups of 100 quasi-identifiers, but ``row`` born in 1940."""
    small = raw.head(300).copy()
    births = ["1925-01-01", "1930-06-01", "1935-01-01"]
    small["birth_date"] = pd.array(
        [births[i % 3] for i in range(300)], "string[pyarrow]"
    )
    small.loc[row, "birth_date"] = "1940-01-01"  # the one patient born in 1940
    small["admission_date"] = pd.array(["1985-01-01"] * 300, "string[pyarrow]")
    small["state"] = pd.array(["OH"] * 300, "string[pyarrow]")
    small["zip"] = pd.array(["44101"] * 300, "string[pyarrow]")
    small["age"] = 60.0
    return small


def test_rows_in_groups_smaller_than_k_are_suppressed(raw):
    small = one_patient_alone(raw, 7)
    out, report = deidentify(small, NOTES_SCHEMA, SECRETS, k=2)
    assert report.rows_suppressed == 1 and len(out) == 299
    assert 7 not in out.index
    assert report.k_anonymity.min_group_size == 99
    assert report.k_anonymity.groups == 3
    assert report.k_anonymity.rows_below_k == 1
    report_only, _ = k_anonymity(
        deidentify(small, NOTES_SCHEMA, SECRETS, k=1)[0],
        NOTES_OUT.quasi_identifiers,
        k=2,
    )
    assert report_only.min_group_size == 1


def test_suppressing_the_last_row_still_scans_the_others(raw):
    small = one_patient_alone(raw, 299)  # the last patient is alone
    out, report = deidentify_checked(small, NOTES_SCHEMA, SECRETS, k=2)
    assert report.rows_suppressed == 1 and 299 not in out.index
