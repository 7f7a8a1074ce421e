import hashlib
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from faker import Faker

from hospfed.client.deid import (
    RESTRICTED_ZIP3,
    DeidSecrets,
    Finding,
    check_residual_identifiers,
    deidentify,
    deidentify_checked,
    k_anonymity,
    pseudonymise,
    scan_residual_identifiers,
    scrub_free_text,
    zip3,
)
from hospfed.common.datasets.heart import CLINICAL_COLUMNS
from hospfed.common.datasets.heart_schema import FED_HEART_RAW_SCHEMA, FED_HEART_SCHEMA
from hospfed.common.errors import (
    ConfigError,
    DataError,
    IdentifierLeakError,
    SchemaError,
)
from hospfed.common.schema import PSEUDONYM_PATTERN, Column, DatasetSchema

SECRETS = DeidSecrets(pseudonym=b"p" * 32, date_shift=b"d" * 32)
OTHER_SECRETS = DeidSecrets(pseudonym=b"q" * 32, date_shift=b"e" * 32)

NOTES = (
    "{name} (MRN {mrn}) admitted {admission} with chest pain; contact {phone}.",
    "Pt {last}, {first}, DOB {birth_us}. SSN {ssn} verified.",
    "Discharge summary emailed to {email}; plan {plan}.",
    "Lives at {street}, {city}, {state} {zip}. Call back on {phone_digits}.",
    "Registration: MRN {mrn}, SSN {ssn_digits}, DOB {birth}.",
    "{upper_name} seen in clinic; {lower_first} reports no pain.",
    "ECG reviewed with attending; continue current medication.",
)


def raw_export(rows: int, seed: int = 0) -> pd.DataFrame:
    """A raw Fed-Heart-Disease export with Faker identifiers planted everywhere."""
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = np.random.default_rng(seed)
    first = [fake.first_name() for _ in range(rows)]
    last = [fake.last_name() for _ in range(rows)]
    mrn = [f"{n:08d}" for n in rng.choice(10**8, rows, replace=False)]
    ssn = [
        f"{a:03d}-{g:02d}-{s:04d}"
        for a, g, s in zip(
            rng.integers(1, 900, rows),
            rng.integers(1, 100, rows),
            rng.integers(1, 10_000, rows),
            strict=True,
        )
    ]
    admission = pd.Timestamp("1984-01-01") + pd.to_timedelta(
        rng.integers(0, 2000, rows), unit="D"
    )
    age = rng.integers(25, 100, rows)
    birth = admission - pd.to_timedelta(
        age * 365 + rng.integers(0, 300, rows), unit="D"
    )
    zips = [fake.zipcode() for _ in range(rows)]
    zips[0], zips[1] = "03601", "89012"  # restricted prefixes 036 and 890
    phones = [
        f"({a}){e}-{line:04d}"
        for a, e, line in zip(
            rng.integers(201, 990, rows),
            rng.integers(201, 990, rows),
            rng.integers(0, 10_000, rows),
            strict=True,
        )
    ]
    frame = pd.DataFrame(
        {
            "mrn": mrn,
            "patient_name": [f"{f} {s}" for f, s in zip(first, last, strict=True)],
            "ssn": ssn,
            "birth_date": birth.strftime("%Y-%m-%d"),
            "admission_date": admission.strftime("%Y-%m-%d"),
            "street_address": [fake.street_address() for _ in range(rows)],
            "city": [fake.city() for _ in range(rows)],
            "state": [fake.state_abbr(include_territories=False) for _ in range(rows)],
            "zip": zips,
            "phone": phones,
            "email": [
                f"{f}.{s}@example.org".lower() for f, s in zip(first, last, strict=True)
            ],
            "health_plan_id": [
                f"HP{n:010d}" for n in rng.choice(10**10, rows, replace=False)
            ],
        }
    )
    frame["note"] = [
        NOTES[i % len(NOTES)].format(
            name=r.patient_name,
            first=f,
            last=s,
            upper_name=r.patient_name.upper(),
            lower_first=f.lower(),
            mrn=r.mrn,
            admission=r.admission_date,
            phone=r.phone,
            phone_digits=re.sub(r"\D", "", r.phone),
            ssn=r.ssn,
            ssn_digits=r.ssn.replace("-", ""),
            email=r.email,
            plan=r.health_plan_id,
            street=r.street_address,
            city=r.city,
            state=r.state,
            zip=r.zip,
            birth=r.birth_date,
            birth_us=pd.Timestamp(r.birth_date).strftime("%m/%d/%Y"),
        )
        for i, (r, f, s) in enumerate(zip(frame.itertuples(), first, last, strict=True))
    ]
    frame.loc[frame.index % 97 == 5, "note"] = None  # some rows have no note
    for column in frame.columns:
        frame[column] = frame[column].astype("string[pyarrow]")
    clinical = {
        "age": age.astype(float),
        "sex": rng.integers(0, 2, rows).astype(float),
        "cp": rng.integers(1, 5, rows).astype(float),
        "trestbps": rng.integers(90, 200, rows).astype(float),
        "chol": rng.integers(120, 400, rows).astype(float),
        "fbs": rng.integers(0, 2, rows).astype(float),
        "restecg": rng.integers(0, 3, rows).astype(float),
        "thalach": rng.integers(70, 200, rows).astype(float),
        "exang": rng.integers(0, 2, rows).astype(float),
        "oldpeak": rng.integers(0, 40, rows) / 10,
        "slope": rng.integers(1, 4, rows).astype(float),
        "ca": rng.integers(0, 4, rows).astype(float),
        "thal": rng.choice([3.0, 6.0, 7.0], rows),
        "num": rng.integers(0, 5, rows).astype(float),
    }
    return pd.concat([frame, pd.DataFrame(clinical)[list(CLINICAL_COLUMNS)]], axis=1)


@pytest.fixture(scope="module")
def raw():
    frame = raw_export(2000)
    FED_HEART_RAW_SCHEMA.validate(frame)
    return frame


@pytest.fixture(scope="module")
def prepared(raw):
    return deidentify_checked(raw, FED_HEART_RAW_SCHEMA, SECRETS)


def test_output_has_the_deidentified_schema_and_keeps_row_order(raw, prepared):
    out, report = prepared
    assert tuple(out.columns) == FED_HEART_SCHEMA.column_names
    FED_HEART_SCHEMA.validate(out)
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


def test_pseudonyms_are_keyed_deterministic_and_letters_only(raw, prepared):
    out, _ = prepared
    assert out["mrn"].str.fullmatch(PSEUDONYM_PATTERN).all()
    again, _ = deidentify(raw, FED_HEART_RAW_SCHEMA, SECRETS)
    assert (again["mrn"] == out["mrn"]).all()
    other, _ = deidentify(raw, FED_HEART_RAW_SCHEMA, OTHER_SECRETS)
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
    out, _ = prepared
    expected = pd.to_datetime(raw["birth_date"].astype(str)).dt.year
    assert (out["birth_date"].astype(int).to_numpy() == expected.to_numpy()).all()
    assert out["admission_date"].between(1984, 1990).all()


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
    out, report = deidentify(visits, visit_schema(), SECRETS)
    admitted = pd.to_datetime(visits["admitted"])
    shift = (out["admitted"] - admitted).dt.days
    assert (shift != 0).all() and shift.abs().le(365).all()
    assert shift[0] == shift[1]  # one patient, one offset
    assert len(set(shift)) > 1  # patients get different offsets
    stay = (out["discharged"] - out["admitted"]).dt.days
    assert stay.tolist() == [4, 10, 1, 8]
    again, _ = deidentify(visits, visit_schema(), SECRETS)
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


def test_the_restricted_zip_list_is_versioned_configuration():
    assert RESTRICTED_ZIP3.version == "census-2000"
    assert "2000 Census" in RESTRICTED_ZIP3.source
    assert len(RESTRICTED_ZIP3.prefixes) == 17
    assert {
        "036",
        "059",
        "063",
        "102",
        "203",
        "556",
        "692",
        "790",
        "821",
        "823",
        "830",
        "831",
        "878",
        "879",
        "884",
        "890",
        "893",
    } == RESTRICTED_ZIP3.prefixes


def test_raw_zip_codes_are_cut_in_the_output(raw, prepared):
    out, report = prepared
    assert out["zip"].str.fullmatch("[0-9]{3}").all()
    assert out["zip"][0] == out["zip"][1] == "000"
    assert report.zip3_list == "census-2000"


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("SSN 123-45-6789 on file", "[SSN]"),
        ("SSN 123456789 on file", "[SSN]"),
        ("call (555)123-4567 today", "[PHONE]"),
        ("call 555.123.4567x89 today", "[PHONE]"),
        ("call +1-555-123-4567 today", "[PHONE]"),
        ("mail jane.roe@example.com now", "[EMAIL]"),
        ("see https://example.org/x?id=1 now", "[URL]"),
        ("from 192.168.10.20 today", "[IP]"),
        ("MRN 00123456 noted", "[MRN]"),
        ("plan HP0123456789 noted", "[MRN]"),
        ("seen 2021-03-04 today", "[DATE]"),
        ("seen 03/04/2021 today", "[DATE]"),
        ("seen March 4, 2021 today", "[DATE]"),
        ("seen 4 March 2021 today", "[DATE]"),
        ("a 92-year-old man", "[AGE>89]"),
        ("lives at 12 Elm Street Apt. 4 alone", "[ADDRESS]"),
    ],
)
def test_free_text_patterns_are_replaced_by_their_tag(text, tag):
    scrubbed, counts = scrub_free_text(pa.array([text]))
    assert tag in scrubbed[0].as_py()
    assert counts[tag] == 1
    assert not any(ch.isdigit() for ch in scrubbed[0].as_py().replace("[AGE>89]", ""))


def test_missing_notes_stay_missing_and_do_not_shift_their_neighbours():
    notes = pa.array(["SSN 123-45-6789", None, "", "call 555-867-5309 now", None])
    scrubbed, _ = scrub_free_text(notes)
    assert scrubbed.to_pylist() == ["SSN [SSN]", None, "", "call [PHONE] now", None]


def test_text_columns_may_be_python_strings(raw, prepared):
    plain = raw.copy()
    for column in FED_HEART_RAW_SCHEMA.text_columns:
        plain[column] = plain[column].astype(object)
    out, _ = deidentify_checked(plain, FED_HEART_RAW_SCHEMA, SECRETS)
    assert out["note"].equals(prepared[0]["note"])
    assert out["mrn"].equals(prepared[0]["mrn"])


def test_clinical_text_is_left_alone():
    text = "bp 120/80, chol 240 mg/dl, 3 tablets daily; a 45-year-old patient."
    scrubbed, counts = scrub_free_text(pa.array([text, None]))
    assert scrubbed.to_pylist() == [text, None]
    assert not counts


def name_schema() -> DatasetSchema:
    return DatasetSchema(
        "names-raw",
        1,
        (
            Column("patient_name", "string", "identifier", phi="name"),
            Column("city", "string", "identifier", phi="geographic"),
            Column("note", "string", "free_text", nullable=True),
            Column("outcome", "int", "label"),
        ),
        "outcome",
    )


def test_a_rows_own_name_is_scrubbed_in_any_case_and_others_are_not():
    frame = pd.DataFrame(
        {
            "patient_name": ["Dr. Will Long", "Ann O'Neil-Smith", "Zoë Weaver"],
            "city": ["Long Beach", "Paramount", "Lakewood"],
            "note": [
                "WILL long will return; Dr. Ann saw him. Willow tree. LONG BEACH.",
                "ann o'neil-smith said Smith called; Will came too.",
                "ZOË weaver, zoë's friend; weaverbird",
            ],
            "outcome": [0, 1, 0],
        }
    )
    out, report = deidentify(frame, name_schema(), SECRETS)
    assert out["note"].tolist() == [
        "[NAME] [NAME] [NAME] return; Dr. Ann saw him. Willow tree. [LOCATION].",
        "[NAME] o'[NAME]-[NAME] said [NAME] called; Will came too.",
        "[NAME] [NAME], [NAME]'s friend; weaverbird",
    ]
    assert dict(report.scrub_counts)["[LOCATION]"] == 1


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
    assert findings == [Finding("comment", "phone", 1)]
    with pytest.raises(IdentifierLeakError, match=r"column 'comment'.*phone") as info:
        check_residual_identifiers(out, schema)
    assert "555" not in str(info.value)
    with pytest.raises(IdentifierLeakError):
        deidentify_checked(frame, schema, SECRETS)


def test_residual_scan_finds_a_rows_own_name_left_in_its_note(raw, prepared):
    out, _ = prepared
    assert (
        scan_residual_identifiers(out, FED_HEART_RAW_SCHEMA, raw_identifier_values=raw)
        == []
    )
    leaked = out.copy()
    leaked.loc[5, "note"] = f"seen by the team; {raw['patient_name'][5]}"
    leaked.loc[6, "note"] = f"moved to {raw['city'][6]}"
    findings = scan_residual_identifiers(
        leaked, FED_HEART_RAW_SCHEMA, raw_identifier_values=raw
    )
    assert {(f.column, f.source, f.rows) for f in findings} == {
        ("note", "patient_name", 1),
        ("note", "city", 1),
    }
    message = findings[0].describe()
    assert raw["patient_name"][5] not in message and raw["city"][6] not in message


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


def test_rows_in_groups_smaller_than_k_are_suppressed(raw):
    small = raw.head(300).copy()
    births = ["1925-01-01", "1930-06-01", "1935-01-01"]
    small["birth_date"] = pd.array(
        [births[i % 3] for i in range(300)], "string[pyarrow]"
    )
    small.loc[7, "birth_date"] = "1940-01-01"  # the one patient born in 1940
    small["admission_date"] = pd.array(["1985-01-01"] * 300, "string[pyarrow]")
    small["state"] = pd.array(["OH"] * 300, "string[pyarrow]")
    small["zip"] = pd.array(["44101"] * 300, "string[pyarrow]")
    small["age"] = 60.0
    out, report = deidentify(small, FED_HEART_RAW_SCHEMA, SECRETS, k=2)
    assert report.rows_suppressed == 1 and len(out) == 299
    assert 7 not in out.index
    assert report.k_anonymity.min_group_size == 99
    assert report.k_anonymity.groups == 3
    assert report.k_anonymity.rows_below_k == 1
    report_only, _ = k_anonymity(
        deidentify(small, FED_HEART_RAW_SCHEMA, SECRETS)[0],
        FED_HEART_SCHEMA.quasi_identifiers,
        k=2,
    )
    assert report_only.min_group_size == 1


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


def test_the_report_has_counts_and_never_a_patient_value(raw, prepared):
    _, report = prepared
    text = "\n".join(report.to_lines())
    assert "rows: 2,000 in, 2,000 out" in text
    assert "pseudonymised (1): mrn" in text
    assert "k-anonymity over birth_date, admission_date, state, zip, age" in text
    for column in ("patient_name", "ssn", "city", "email"):
        assert not any(v in text for v in raw[column].astype(str))


def test_secrets_are_hidden_and_must_be_long_enough():
    assert "pppp" not in repr(SECRETS)
    with pytest.raises(ConfigError, match="pseudonym secret must be at least 16 bytes"):
        DeidSecrets(pseudonym=b"short", date_shift=b"d" * 32)


def test_deidentify_refuses_a_deidentified_schema_and_a_bad_k(raw):
    with pytest.raises(ConfigError, match="de-identified data"):
        deidentify(raw, FED_HEART_SCHEMA, SECRETS)
    with pytest.raises(ConfigError, match="k must be a positive"):
        deidentify(raw, FED_HEART_RAW_SCHEMA, SECRETS, k=0)


def test_the_result_does_not_depend_on_the_block_size(raw, prepared, monkeypatch):
    # Text columns are de-identified and scanned a block of rows at a time.
    monkeypatch.setattr("hospfed.client.deid.pipeline._ROWS_PER_BLOCK", 300)
    out, report = deidentify_checked(raw, FED_HEART_RAW_SCHEMA, SECRETS)
    pd.testing.assert_frame_equal(out, prepared[0])
    assert report == prepared[1]
    leaked = out.copy()
    for row in (5, 1500):  # in the first and the sixth block
        leaked.loc[row, "note"] = f"seen by {raw['patient_name'][row]}"
    findings = scan_residual_identifiers(
        leaked, FED_HEART_RAW_SCHEMA, raw_identifier_values=raw
    )
    assert findings == [Finding("note", "identifier_value", 2, "patient_name")]


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


def test_suppressing_the_last_row_still_scans_the_others(raw):
    small = raw.head(300).copy()
    births = ["1925-01-01", "1930-06-01", "1935-01-01"]
    small["birth_date"] = pd.array(
        [births[i % 3] for i in range(300)], "string[pyarrow]"
    )
    small.loc[299, "birth_date"] = "1940-01-01"  # the last patient is alone
    small["admission_date"] = pd.array(["1985-01-01"] * 300, "string[pyarrow]")
    small["state"] = pd.array(["OH"] * 300, "string[pyarrow]")
    small["zip"] = pd.array(["44101"] * 300, "string[pyarrow]")
    small["age"] = 60.0
    out, report = deidentify_checked(small, FED_HEART_RAW_SCHEMA, SECRETS, k=2)
    assert report.rows_suppressed == 1 and 299 not in out.index


def test_a_value_whose_only_letter_is_its_last_is_still_scrubbed():
    frame = pd.DataFrame(
        {
            "patient_name": ["Ann Lee", "Bo Kim"],
            "city": ["1201 B", ""],  # an empty value right after it
            "note": ["moved from 1201 B last year", "fine"],
            "outcome": [0, 1],
        }
    )
    out, _ = deidentify(frame, name_schema(), SECRETS)
    assert out["note"].tolist() == ["moved from [LOCATION] last year", "fine"]


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
        deidentify_checked(frame, schema, SECRETS)
    assert "arma" not in str(info.value).lower()


def test_deidentify_checked_reports_a_broken_contract_first(raw, prepared):
    # A de-identified schema is refused, but a broken contract is named first.
    with pytest.raises(SchemaError, match="unexpected columns"):
        deidentify_checked(raw, FED_HEART_SCHEMA, SECRETS)
    with pytest.raises(ConfigError, match="de-identified data"):
        deidentify_checked(prepared[0], FED_HEART_SCHEMA, SECRETS)
