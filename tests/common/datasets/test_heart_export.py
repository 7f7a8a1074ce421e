import csv
import stat
from datetime import date

import numpy as np
import pandas as pd
import pytest

from hospfed.common.datasets import heart_export as raw_export
from hospfed.common.datasets import identities
from hospfed.common.datasets.heart import (
    CLINICAL_COLUMNS,
    CLINICAL_SCHEMA,
    HOSPITALS,
    load_clinical_tables,
)
from hospfed.common.datasets.heart_export import (
    IDENTIFIER_COLUMNS,
    RAW_EXPORT_COLUMNS,
    RESTRICTED_ZIP3_STATES,
    STRING_COLUMNS,
    hospital_raw_export,
    planted_identifiers,
    synthetic_raw_export,
    write_raw_export,
)
from hospfed.common.errors import ConfigError, SchemaError

FORMATS = {
    "mrn": r"\d{8}",
    "ssn": r"\d{3}-\d{2}-\d{4}",
    "birth_date": r"\d{4}-\d{2}-\d{2}",
    "admission_date": r"198[1-8]-\d{2}-\d{2}",
    "state": r"[A-Z]{2}",
    "zip": r"\d{5}",
    "health_plan_id": r"HP\d{10}",
    "email": r"[a-z]+\.?[a-z]+\d*@[a-z0-9.-]+\.[a-z]+",
    "phone": r"(\+1-|001-)?\(?\d{3}\)?[-.]?\d{3}[-.]?\d{4}(x\d{3,5})?",
}


@pytest.fixture(scope="module")
def real():
    return load_clinical_tables()


@pytest.fixture(scope="module")
def exports():
    return {h: hospital_raw_export(h, seed=0) for h in HOSPITALS}


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_raw_export(20_000, seed=3)


def _ages_at_admission(frame: pd.DataFrame) -> np.ndarray:
    birth = pd.to_datetime(frame["birth_date"].astype(str), format="%Y-%m-%d")
    admitted = pd.to_datetime(frame["admission_date"].astype(str), format="%Y-%m-%d")
    before_birthday = (admitted.dt.month < birth.dt.month) | (
        (admitted.dt.month == birth.dt.month) & (admitted.dt.day < birth.dt.day)
    )
    return (admitted.dt.year - birth.dt.year - before_birthday).to_numpy()


def _read_csv(path):
    return pd.read_csv(
        path,
        dtype=dict.fromkeys(STRING_COLUMNS, str),
        keep_default_na=False,
        na_values=[""],
    )


def _assert_same_export(read: pd.DataFrame, written: pd.DataFrame) -> None:
    assert list(read.columns) == list(RAW_EXPORT_COLUMNS)
    for column in STRING_COLUMNS:
        assert read[column].tolist() == written[column].astype(str).tolist(), column
    pd.testing.assert_frame_equal(
        read[list(CLINICAL_COLUMNS)].astype("float64"),
        written[list(CLINICAL_COLUMNS)],
        check_exact=True,
    )


@pytest.mark.parametrize("hospital", HOSPITALS)
def test_clinical_rows_are_the_real_ones_unchanged(exports, real, hospital):
    export = exports[hospital]
    assert list(export.columns) == list(RAW_EXPORT_COLUMNS)
    pd.testing.assert_frame_equal(
        export[list(CLINICAL_COLUMNS)], real[hospital], check_exact=True
    )


@pytest.mark.parametrize("hospital", HOSPITALS)
def test_every_birth_date_gives_the_real_age_at_admission(exports, hospital):
    export = exports[hospital]
    assert (_ages_at_admission(export) == export["age"].to_numpy()).all()
    # The same check, spelled with datetime.date for the first rows.
    for birth, admitted, age in (
        export[["birth_date", "admission_date", "age"]].head(20).itertuples(index=False)
    ):
        b, a = date.fromisoformat(birth), date.fromisoformat(admitted)
        assert a.year - b.year - ((a.month, a.day) < (b.month, b.day)) == age


@pytest.mark.parametrize("hospital", HOSPITALS)
def test_identifiers_have_the_agreed_formats(exports, hospital):
    export = exports[hospital]
    for column, pattern in FORMATS.items():
        values = export[column].astype(str)
        bad = values[~values.str.fullmatch(pattern)]
        assert bad.empty, (column, bad.head().tolist())
    names = export["patient_name"].astype(str)
    assert names.str.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+").all()


def test_same_seed_same_export_and_other_seed_other_identifiers(exports):
    again = hospital_raw_export("cleveland", seed=0)
    pd.testing.assert_frame_equal(again, exports["cleveland"])
    other = hospital_raw_export("cleveland", seed=1)
    assert not set(other["mrn"]) & set(exports["cleveland"]["mrn"])
    assert (other["patient_name"] != exports["cleveland"]["patient_name"]).mean() > 0.9


def test_numbers_are_unique_across_the_four_hospitals(exports):
    everyone = pd.concat(exports.values(), ignore_index=True)
    for column in ("mrn", "ssn", "health_plan_id"):
        assert everyone[column].is_unique, column
    digits = everyone["phone"].astype(str).str.replace(r"x\d+$", "", regex=True)
    assert digits.str.replace(r"\D", "", regex=True).str[-10:].is_unique
    assert everyone["mrn"].str.startswith("0").any()


def test_hospitals_get_their_own_geography(exports):
    for hospital, state, prefixes in (
        ("cleveland", "OH", ("440", "441", "442", "443")),
        ("va", "CA", ("907", "908")),
    ):
        export = exports[hospital]
        prefix = export["zip"].str[:3]
        local = ~prefix.isin(list(RESTRICTED_ZIP3_STATES))
        assert (export.loc[local, "state"] == state).all()
        assert prefix[local].isin(prefixes).all()
        assert prefix[local].nunique() == len(prefixes)
    assert exports["hungary"]["state"].nunique() > 10


@pytest.mark.parametrize("hospital", HOSPITALS)
def test_some_zips_are_in_restricted_areas_with_their_state(exports, hospital):
    export = exports[hospital]
    prefix = export["zip"].str[:3]
    restricted = prefix.isin(list(RESTRICTED_ZIP3_STATES))
    assert restricted.sum() >= 3
    assert prefix[restricted].str.startswith("0").any()
    expected = prefix[restricted].map(RESTRICTED_ZIP3_STATES)
    assert (export.loc[restricted, "state"] == expected).all()


def test_notes_mention_every_kind_of_identifier_in_several_spellings(exports):
    export = pd.concat(exports.values(), ignore_index=True).astype(
        dict.fromkeys(STRING_COLUMNS, object)
    )
    notes = export["note"]

    def mentioned(values):
        return np.array([v in n for v, n in zip(values, notes, strict=True)])

    def us_date(iso):
        return iso.str[5:7] + "/" + iso.str[8:10] + "/" + iso.str[:4]

    for column in IDENTIFIER_COLUMNS:
        assert mentioned(export[column]).sum() > 20, column
    assert mentioned(export["ssn"].str.replace("-", "")).sum() > 20
    assert mentioned(us_date(export["birth_date"])).sum() > 20
    assert mentioned(us_date(export["admission_date"])).sum() > 20
    last_first = export["patient_name"].str.split(" ").str[::-1].str.join(", ")
    assert mentioned(last_first).sum() > 20
    any_identifier = np.zeros(len(export), dtype=bool)
    for column in IDENTIFIER_COLUMNS:
        any_identifier |= mentioned(export[column])
    assert 0.05 < (~any_identifier).mean() < 0.3


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip_keeps_leading_zeros_and_values(exports, tmp_path, suffix):
    export = exports["hungary"]
    assert export["mrn"].str.startswith("0").any()
    assert export["zip"].str.startswith("0").any()
    path = tmp_path / "nested" / f"raw{suffix}"
    write_raw_export(export, path)
    read = _read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    _assert_same_export(read, export)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_csv_leaves_missing_clinical_values_empty(exports, tmp_path):
    path = tmp_path / "raw.csv"
    write_raw_export(exports["switzerland"], path)
    rows = list(csv.reader(path.read_text().splitlines()))
    assert rows[0] == list(RAW_EXPORT_COLUMNS)
    first = dict(zip(rows[0], rows[1], strict=True))
    # Patient 1 in Switzerland: fbs, ca and thal are missing in the UCI file.
    assert (first["fbs"], first["ca"], first["thal"]) == ("", "", "")
    assert (first["age"], first["oldpeak"], first["num"]) == ("32", "0.7", "1")


@pytest.mark.parametrize("name", ["raw.txt", "raw.xlsx", "raw", "raw.csv.gz"])
def test_other_suffixes_are_refused_and_nothing_is_written(exports, tmp_path, name):
    with pytest.raises(ConfigError, match=r"\.csv, \.parquet"):
        write_raw_export(exports["va"], tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_a_frame_that_is_not_a_raw_export_is_refused(exports, tmp_path):
    with pytest.raises(SchemaError, match="columns"):
        write_raw_export(exports["va"].drop(columns=["note"]), tmp_path / "raw.csv")
    assert list(tmp_path.iterdir()) == []


def test_planted_identifiers_lists_every_identifier_value(exports):
    export = exports["va"]
    planted = planted_identifiers(export)
    assert set(planted) == set(IDENTIFIER_COLUMNS)
    for column in IDENTIFIER_COLUMNS:
        assert planted[column] == set(export[column].astype(str)), column
    assert len(planted["mrn"]) == len(export)
    with pytest.raises(SchemaError, match="ssn"):
        planted_identifiers(export.drop(columns=["ssn"]))


def test_bad_arguments_are_refused():
    with pytest.raises(ConfigError, match="cleveland"):
        hospital_raw_export("mayo")
    with pytest.raises(ConfigError, match="seed"):
        hospital_raw_export("va", seed=-1)
    with pytest.raises(ConfigError, match="num_rows"):
        synthetic_raw_export(0)
    with pytest.raises(ConfigError, match="num_rows"):
        synthetic_raw_export(raw_export.MAX_SYNTHETIC_ROWS + 1)


def test_synthetic_export_has_the_raw_export_columns_and_types(synthetic):
    assert list(synthetic.columns) == list(RAW_EXPORT_COLUMNS)
    assert len(synthetic) == 20_000
    for column in STRING_COLUMNS:
        assert pd.api.types.is_string_dtype(synthetic[column]), column
        assert synthetic[column].notna().all(), column
    for column in CLINICAL_COLUMNS:
        assert synthetic[column].dtype == np.float64, column
    for column, pattern in FORMATS.items():
        assert synthetic[column].astype(str).str.fullmatch(pattern).all(), column
    for column in ("mrn", "ssn", "health_plan_id"):
        assert synthetic[column].is_unique, column


def test_synthetic_export_has_oldest_old_patients_and_valid_clinical_rows(
    synthetic, real
):
    age = synthetic["age"]
    assert 100 <= (age > 89).sum() <= 300
    assert age.max() <= 99
    CLINICAL_SCHEMA.validate(synthetic[list(CLINICAL_COLUMNS)])
    assert (_ages_at_admission(synthetic) == age.to_numpy()).all()
    rest = [c for c in CLINICAL_COLUMNS if c != "age"]
    pooled = pd.concat(real.values()).fillna(-1.0)
    known = set(pooled[rest].itertuples(index=False, name=None))
    rows = synthetic[rest].fillna(-1.0).itertuples(index=False, name=None)
    assert all(row in known for row in rows)


def test_synthetic_dates_cover_29_february(synthetic):
    for column in ("admission_date", "birth_date"):
        assert synthetic[column].str.endswith("-02-29").any(), column


def test_synthetic_export_is_deterministic_and_plants_restricted_zips(synthetic):
    pd.testing.assert_frame_equal(synthetic_raw_export(20_000, seed=3), synthetic)
    prefix = synthetic["zip"].str[:3]
    restricted = prefix.isin(list(RESTRICTED_ZIP3_STATES))
    assert restricted.mean() > 0.01
    assert set(prefix[restricted]) == set(RESTRICTED_ZIP3_STATES)


def test_synthetic_csv_round_trip(synthetic, tmp_path):
    path = tmp_path / "bench.csv"
    write_raw_export(synthetic, path)
    _assert_same_export(_read_csv(path), synthetic)


@pytest.mark.parametrize(
    ("admitted", "age", "earliest", "latest"),
    [
        ("1988-02-29", 30, "1957-03-01", "1958-02-28"),  # born in a common year
        ("1988-02-29", 4, "1983-03-01", "1984-02-29"),  # born in a leap year
        ("1985-03-01", 3, "1981-03-02", "1982-03-01"),
        ("1981-01-01", 97, "1883-01-02", "1884-01-01"),
    ],
)
def test_birth_dates_span_exactly_the_year_that_gives_the_age(
    admitted, age, earliest, latest
):
    rng = np.random.default_rng(0)
    births = identities._birth_dates(
        np.full(5000, np.datetime64(admitted, "D")), np.full(5000, age), rng
    )
    assert births.min() == np.datetime64(earliest, "D")
    assert births.max() == np.datetime64(latest, "D")
    a = date.fromisoformat(admitted)
    for birth in {date.fromisoformat(str(b)) for b in births}:
        assert (
            a.year - birth.year - ((a.month, a.day) < (birth.month, birth.day)) == age
        )


def test_exports_meet_the_raw_schema_contract(exports, synthetic):
    raw_schema = pytest.importorskip("hospfed.common.datasets.heart_schema")
    schema = raw_schema.FED_HEART_RAW_SCHEMA
    assert schema.column_names == RAW_EXPORT_COLUMNS
    schema.validate(exports["cleveland"])
    schema.validate(synthetic)


def test_planted_restricted_prefixes_are_the_ones_deidentification_uses():
    deid = pytest.importorskip("hospfed.client.deid")
    assert deid.RESTRICTED_ZIP3.prefixes == frozenset(RESTRICTED_ZIP3_STATES)
