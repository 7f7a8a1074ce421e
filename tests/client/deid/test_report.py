"""Tests of hospfed.client.deid.report: what the report says."""


def test_the_report_has_counts_and_never_a_patient_value(raw, prepared):
    _, report = prepared
    text = "\n".join(report.to_lines())
    assert "rows: 2,000 in, 2,000 out" in text
    assert "pseudonymised (1): mrn" in text
    assert "k-anonymity over birth_date, admission_date, state, zip, age" in text
    for column in ("patient_name", "ssn", "city", "email"):
        assert not any(v in text for v in raw[column].astype(str))
