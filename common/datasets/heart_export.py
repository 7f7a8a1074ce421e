"""Realistic raw hospital exports: synthetic identifiers on real clinical rows.

This module owns the *raw* Fed-Heart-Disease export, the file a hospital's
IT would hand to ``hospfed-client prepare`` and what ``hospfed-client
demo-export`` writes: 13 identifier and free-text columns
(:data:`STRING_COLUMNS`: MRN, name, SSN, dates of birth and admission,
address, phone, email, health plan id, a clinical note) followed by the 14
clinical columns in UCI coding. The identifiers are synthetic (Faker plus
NumPy), joined onto the real clinical rows of one hospital
(:func:`hospital_raw_export`) or onto rows bootstrapped from all four
(:func:`synthetic_raw_export`, vectorised, for benchmarks and the
planted-identifier test). :func:`write_raw_export` writes one atomically as
CSV or Parquet, owner-readable only, and :func:`planted_identifiers` lists
every identifier value a de-identified copy must no longer contain.
"""

from __future__ import annotations

import io
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from faker import Faker

from hospfed.common.datasets.heart import (
    CLINICAL_COLUMNS,
    EXPECTED_ROWS,
    HOSPITALS,
    load_clinical_tables,
)
from hospfed.common.errors import ConfigError, SchemaError
from hospfed.common.files import atomic_write

IDENTIFIER_COLUMNS: tuple[str, ...] = (
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
)
"""The structured identifier columns whose values de-identification removes."""

STRING_COLUMNS: tuple[str, ...] = (
    *IDENTIFIER_COLUMNS[:7],
    "state",
    *IDENTIFIER_COLUMNS[7:],
    "note",
)
"""The 13 leading columns of a raw export; a reader must read them as ``str``."""

RAW_EXPORT_COLUMNS: tuple[str, ...] = STRING_COLUMNS + CLINICAL_COLUMNS
"""Every column of a raw export, in file order."""

EXPORT_SUFFIXES: tuple[str, ...] = (".csv", ".parquet")
"""File types :func:`write_raw_export` can write, chosen by the path's suffix."""

STUDY_YEARS: tuple[int, int] = (1981, 1988)
"""First and last year of admission (the UCI collection period)."""

MAX_SYNTHETIC_ROWS = 5_000_000
"""Largest :func:`synthetic_raw_export` (unique phone numbers run out at 8M)."""

RESTRICTED_ZIP3_STATES: Mapping[str, str] = {
    "036": "NH",
    "059": "VT",
    "063": "CT",
    "102": "NY",
    "203": "DC",
    "556": "MN",
    "692": "NE",
    "790": "TX",
    "821": "WY",
    "823": "WY",
    "830": "WY",
    "831": "WY",
    "878": "NM",
    "879": "NM",
    "884": "NM",
    "890": "NV",
    "893": "NV",
}
"""Safe Harbor's restricted 3-digit ZIP prefixes (2000 Census) and their state.

Only used to plant such ZIPs; de-identification keeps its own versioned list.
"""

Text: TypeAlias = Any  # a pyarrow StringArray; pyarrow ships no type stubs
Ints = npt.NDArray[np.int64]
Days = npt.NDArray[np.datetime64]

# Fixed places (city, 3-digit ZIP prefix, phone area code) around the two US
# hospitals; the European ones get Faker's US placeholders instead.
_US_PLACES: Mapping[str, tuple[str, tuple[tuple[str, str, str], ...]]] = {
    "cleveland": (
        "OH",
        (
            ("Cleveland", "441", "216"),
            ("Lakewood", "441", "216"),
            ("Euclid", "441", "216"),
            ("Parma", "441", "440"),
            ("Strongsville", "441", "440"),
            ("Elyria", "440", "440"),
            ("Lorain", "440", "440"),
            ("Mentor", "440", "440"),
            ("Cuyahoga Falls", "442", "330"),
            ("Medina", "442", "330"),
            ("Akron", "443", "330"),
        ),
    ),
    "va": (
        "CA",
        (
            ("Long Beach", "908", "562"),
            ("Signal Hill", "907", "562"),
            ("Lakewood", "907", "562"),
            ("Bellflower", "907", "562"),
            ("Cerritos", "907", "562"),
            ("Paramount", "907", "562"),
            ("Seal Beach", "907", "562"),
            ("Carson", "907", "310"),
            ("San Pedro", "907", "310"),
        ),
    ),
}

_PHONE_FORMATS = (
    "{area}-{exchange}-{line}",
    "({area}){exchange}-{line}",
    "{area}.{exchange}.{line}",
    "{area}{exchange}{line}",
    "+1-{area}-{exchange}-{line}",
    "001-{area}-{exchange}-{line}",
    "{area}-{exchange}-{line}x{extension}",
    "({area}){exchange}-{line}x{extension}",
    "+1-{area}-{exchange}-{line}x{extension}",
)
_PHONE_WEIGHTS = (6, 4, 3, 2, 2, 1, 1, 1, 1)

_EMAIL_FORMATS = (
    "{first}.{last}@{domain}",
    "{first}{last}{number}@{domain}",
    "{initial}{last}@{domain}",
)
_STREET_FORMATS = (
    "{number} {street}",
    "{number} {street} Apt. {unit}",
    "{number} {street} Suite {unit}",
)

NOTE_TEMPLATES: tuple[str, ...] = (
    "{patient_name} (MRN {mrn}) admitted {admission_date} with chest pain; "
    "contact {phone}.",
    "Pt {last_first}, DOB {birth_date_us}, seen {admission_date_us}. "
    "SSN {ssn} verified.",
    "{age}-year-old patient. Discharge summary emailed to {email}; "
    "plan {health_plan_id}.",
    "Lives at {street_address}, {city}, {state} {zip}. Call back on {phone_digits}.",
    "Registration: MRN {mrn}, SSN {ssn_digits}, DOB {birth_date}, "
    "admitted {admission_date_us}.",
    "Exercise test performed without complications.",
    "ECG reviewed with attending; continue current medication.",
)
"""The clinical-note templates; the last two mention no identifier."""

_NOTE_WEIGHTS = (3, 3, 2, 2, 2, 1, 1)

# Random streams: one per hospital export, one for the federation's unique
# numbers (so MRNs never collide across hospitals), one for synthetic exports.
_FEDERATION_STREAM = len(HOSPITALS)
_SYNTHETIC_STREAM = len(HOSPITALS) + 1
_SYNTHETIC_POOL = 2000
_SYNTHETIC_PLACES = 500
_OLDEST_OLD_FRACTION = 0.01
_RESTRICTED_ZIP_FRACTION = 0.02


def hospital_raw_export(hospital: str, *, seed: int = 0) -> pd.DataFrame:
    """Return one hospital's real clinical rows with synthetic identifiers.

    The clinical columns are exactly ``load_clinical_tables()[hospital]``
    (same rows, same order, same values). Cleveland patients live in Ohio
    (ZIP prefixes 440-443, area codes 216/440/330) and Long Beach VA
    patients in California (907-908, 562/310). The Hungarian and Swiss
    patients get Faker's US placeholder addresses, because the export schema
    is the US Safe Harbor one. About 2% of patients, at least three, live in
    a Safe Harbor restricted ZIP area (state set to match), at least one of
    them with a leading zero. Admission dates fall in :data:`STUDY_YEARS`
    and every date of birth gives the real ``age`` at admission exactly; no
    age is changed, so no patient is over 89. Each note follows one of
    :data:`NOTE_TEMPLATES`: identifiers spelled as stored and otherwise
    (MM/DD/YYYY dates, "Last, First", SSN and phone as bare digits, the
    age), or no identifier at all.

    Parameters
    ----------
    hospital : str
        One of :data:`~hospfed.common.datasets.heart.HOSPITALS`.
    seed : int
        Same seed, same export (for the pinned Faker version). MRNs, SSNs,
        health plan ids and phone numbers are unique across the four
        hospitals' exports of one seed.

    Returns
    -------
    pandas.DataFrame
        :data:`RAW_EXPORT_COLUMNS`; :data:`STRING_COLUMNS` as pandas
        ``string[pyarrow]``, clinical columns ``float64`` with NaN for
        missing values.

    Raises
    ------
    ConfigError
        If ``hospital`` is unknown or ``seed`` is negative.

    """
    if hospital not in HOSPITALS:
        raise ConfigError(
            f"unknown hospital {hospital!r}; choose one of {', '.join(HOSPITALS)}"
        )
    index = HOSPITALS.index(hospital)
    rng, fake = _generators(seed, index)
    clinical = load_clinical_tables()[hospital]
    size = len(clinical)
    patients = _Patients.of(clinical, np.full(size, index))
    start = sum(EXPECTED_ROWS[h] for h in HOSPITALS[:index])
    numbers = _federation_numbers(seed).rows(slice(start, start + size))
    pools = _Pools.from_faker(fake, size)
    places = {index: _places(hospital, fake, size)}
    restricted = max(3, round(_RESTRICTED_ZIP_FRACTION * size))
    identifiers = _identifiers(patients, numbers, pools, places, restricted, rng)
    return _raw_export(identifiers, clinical)


def synthetic_raw_export(num_rows: int, *, seed: int = 0) -> pd.DataFrame:
    """Return a raw export of any size, built vectorised for benchmarks.

    Clinical rows are bootstrapped from the four real hospitals (each row
    keeps its hospital's geography), then about 1% of ages are set to 90-99
    so the Safe Harbor age cap has work to do. Identifiers are drawn with
    NumPy from modest Faker pools (2,000 first names per sex, last names,
    streets; 500 placeholder places) and unique numbers (MRN, SSN, health
    plan id, phone digits), and formatted with Arrow compute kernels: about
    4 s for a million rows on one core.

    Parameters
    ----------
    num_rows : int
        Number of patients, 1 to :data:`MAX_SYNTHETIC_ROWS`.
    seed : int
        Same seed, same export (for the pinned Faker version).

    Returns
    -------
    pandas.DataFrame
        :data:`RAW_EXPORT_COLUMNS`, as :func:`hospital_raw_export`.

    Raises
    ------
    ConfigError
        If ``num_rows`` is out of range or ``seed`` is negative.

    """
    if not 1 <= num_rows <= MAX_SYNTHETIC_ROWS:
        raise ConfigError(
            f"num_rows must be between 1 and {MAX_SYNTHETIC_ROWS:,}, got {num_rows}"
        )
    rng, fake = _generators(seed, _SYNTHETIC_STREAM)
    clinical, hospital = _bootstrap_clinical(num_rows, rng)
    patients = _Patients.of(clinical, hospital)
    numbers = _Numbers.draw(rng, num_rows)
    pools = _Pools.from_faker(fake, _SYNTHETIC_POOL)
    places = {i: _places(h, fake, _SYNTHETIC_PLACES) for i, h in enumerate(HOSPITALS)}
    restricted = max(1, round(_RESTRICTED_ZIP_FRACTION * num_rows))
    identifiers = _identifiers(patients, numbers, pools, places, restricted, rng)
    return _raw_export(identifiers, clinical)


def write_raw_export(frame: pd.DataFrame, path: Path) -> None:
    """Write a raw export atomically, as CSV or Parquet by ``path``'s suffix.

    The file is created owner-readable only (0600): it holds patient
    identifiers, synthetic or not. In CSV (UTF-8, a header row) every string
    is quoted, numbers are written in their shortest exact form (``63``,
    ``0.7``) and missing clinical values are empty fields. CSV has no types,
    so a reader must read :data:`STRING_COLUMNS` as strings to keep the
    leading zeros of ``mrn`` and ``zip``, and cast the clinical columns to
    float::

        pd.read_csv(path, dtype=dict.fromkeys(STRING_COLUMNS, str),
                    keep_default_na=False, na_values=[""])

    Parquet keeps the column types by itself.

    Parameters
    ----------
    frame : pandas.DataFrame
        A raw export (:data:`RAW_EXPORT_COLUMNS`, in order).
    path : Path
        Destination ending in ``.csv`` or ``.parquet``; missing parent
        directories are created.

    Raises
    ------
    ConfigError
        If the suffix is not one of :data:`EXPORT_SUFFIXES`.
    SchemaError
        If ``frame`` does not have the raw export's columns in order.

    """
    suffix = path.suffix.lower()
    if suffix not in EXPORT_SUFFIXES:
        raise ConfigError(
            f"raw export {path}: unsupported file type {path.suffix or '(none)'!r}; "
            f"use one of {', '.join(EXPORT_SUFFIXES)}"
        )
    if tuple(frame.columns) != RAW_EXPORT_COLUMNS:
        raise SchemaError(
            f"raw export {path}: columns {list(frame.columns)} are not the raw "
            f"export's {list(RAW_EXPORT_COLUMNS)}"
        )
    data = _csv_bytes(frame) if suffix == ".csv" else _parquet_bytes(frame)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data, mode=0o600)


def planted_identifiers(frame: pd.DataFrame) -> dict[str, set[str]]:
    """Return every identifier value in a raw export, per identifier column.

    Parameters
    ----------
    frame : pandas.DataFrame
        A raw export, or any frame with the :data:`IDENTIFIER_COLUMNS`.

    Returns
    -------
    dict of str to set of str
        For each of :data:`IDENTIFIER_COLUMNS`, its distinct non-missing
        values as they appear in the export (dates in ISO form).

    Raises
    ------
    SchemaError
        If an identifier column is missing.

    """
    missing = [c for c in IDENTIFIER_COLUMNS if c not in frame.columns]
    if missing:
        raise SchemaError(f"not a raw export: missing identifier columns {missing}")
    return {c: set(frame[c].dropna().astype(str)) for c in IDENTIFIER_COLUMNS}


# --- sources of randomness and of real rows ---------------------------------


def _generators(seed: int, stream: int) -> tuple[np.random.Generator, Faker]:
    if seed < 0:
        raise ConfigError(f"seed must be zero or positive, got {seed}")
    sequence = np.random.SeedSequence([seed, stream])
    fake = Faker("en_US")
    fake.seed_instance(int(sequence.generate_state(1)[0]))
    return np.random.default_rng(sequence), fake


def _bootstrap_clinical(
    num_rows: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, Ints]:
    tables = load_clinical_tables()
    pooled = pd.concat([tables[h] for h in HOSPITALS], ignore_index=True)
    origin = np.repeat(np.arange(len(HOSPITALS)), [len(tables[h]) for h in HOSPITALS])
    picks = rng.integers(0, len(pooled), num_rows)
    clinical = pooled.iloc[picks].reset_index(drop=True)
    oldest = rng.choice(
        num_rows, max(1, round(_OLDEST_OLD_FRACTION * num_rows)), replace=False
    )
    clinical.loc[oldest, "age"] = rng.integers(90, 100, oldest.size).astype(float)
    return clinical, origin[picks]


def _raw_export(
    identifiers: Mapping[str, Text], clinical: pd.DataFrame
) -> pd.DataFrame:
    strings = pd.DataFrame(
        {c: pd.arrays.ArrowStringArray(identifiers[c]) for c in STRING_COLUMNS},
        index=clinical.index,
    )
    return pd.concat([strings, clinical], axis=1)


# --- the people behind the rows ---------------------------------------------


@dataclass(frozen=True)
class _Patients:
    """What identifiers must agree with: age, sex and hospital of each row."""

    age: Ints
    male: npt.NDArray[np.bool_]
    hospital: Ints

    @classmethod
    def of(cls, clinical: pd.DataFrame, hospital: Ints) -> _Patients:
        return cls(
            age=clinical["age"].to_numpy().astype(np.int64),
            male=clinical["sex"].to_numpy() == 1,
            hospital=hospital,
        )

    def __len__(self) -> int:
        return len(self.age)


@dataclass(frozen=True)
class _Numbers:
    """Unique numbers: MRNs, SSNs, health plan ids, phone subscriber numbers."""

    mrn: Ints  # 0 .. 10**8 - 1
    ssn: Ints  # index into the valid SSNs, see _ssn_parts
    health_plan: Ints  # 0 .. 10**10 - 1
    subscriber: Ints  # (exchange - 200) * 10**4 + line, exchange 200-999

    @classmethod
    def draw(cls, rng: np.random.Generator, size: int) -> _Numbers:
        return cls(
            mrn=rng.choice(10**8, size, replace=False),
            ssn=rng.choice(_SSN_AREAS.size * 99 * 9999, size, replace=False),
            health_plan=rng.choice(10**10, size, replace=False),
            subscriber=rng.choice(800 * 10**4, size, replace=False),
        )

    def rows(self, rows: slice) -> _Numbers:
        return _Numbers(
            self.mrn[rows],
            self.ssn[rows],
            self.health_plan[rows],
            self.subscriber[rows],
        )


def _federation_numbers(seed: int) -> _Numbers:
    rng = np.random.default_rng(np.random.SeedSequence([seed, _FEDERATION_STREAM]))
    return _Numbers.draw(rng, sum(EXPECTED_ROWS.values()))


@dataclass(frozen=True)
class _Pools:
    """Faker values that rows are drawn from."""

    first_male: Text
    first_female: Text
    last: Text
    street: Text
    email_domain: Text

    @classmethod
    def from_faker(cls, fake: Faker, size: int) -> _Pools:
        def pool(draw: Callable[[], str], count: int = size) -> list[str]:
            return [draw() for _ in range(count)]

        domains = max(10, size // 20)
        return cls(
            first_male=pa.array(pool(fake.first_name_male)),
            first_female=pa.array(pool(fake.first_name_female)),
            last=pa.array(pool(fake.last_name)),
            street=pa.array(pool(fake.street_name)),
            email_domain=pa.array(
                pool(fake.free_email_domain, domains) + pool(fake.domain_name, domains)
            ),
        )


@dataclass(frozen=True)
class _Places:
    """Where patients live: city, state, ZIP prefix, area code, per place."""

    city: list[str]
    state: list[str]
    zip3: list[str]
    area_code: list[str]


_PLACE = ("city", "state", "zip3", "area_code")


def _places(hospital: str, fake: Faker, size: int) -> _Places:
    if hospital in _US_PLACES:
        home_state, home = _US_PLACES[hospital]
        return _Places(
            city=[city for city, _, _ in home],
            state=[home_state] * len(home),
            zip3=[zip3 for _, zip3, _ in home],
            area_code=[area for _, _, area in home],
        )
    rows = []
    for _ in range(size):
        state = fake.state_abbr(include_territories=False)
        zip3 = fake.zipcode_in_state(state)[:3]
        rows.append((fake.city(), state, zip3, fake.numerify("$##")))
    city, states, zips, area = (list(c) for c in zip(*rows, strict=True))
    return _Places(city, states, zips, area)


# --- identifiers, vectorised --------------------------------------------------


def _identifiers(
    patients: _Patients,
    numbers: _Numbers,
    pools: _Pools,
    places: Mapping[int, _Places],
    restricted: int,
    rng: np.random.Generator,
) -> dict[str, Text]:
    fields = _name_fields(patients, pools, rng)
    fields |= _date_fields(patients.age, rng)
    fields |= _address_fields(patients, places, pools, restricted, rng)
    fields |= _number_fields(numbers, fields["area_code"], rng)
    fields["email"] = _email(fields, pools, rng)
    fields["age"] = _text(patients.age)
    choice = _pick(_NOTE_WEIGHTS, len(patients), rng)
    fields["note"] = _render(NOTE_TEMPLATES, choice, fields)
    return fields


def _name_fields(
    patients: _Patients, pools: _Pools, rng: np.random.Generator
) -> dict[str, Text]:
    size = len(patients)
    first = pc.if_else(
        pa.array(patients.male),
        _draw(pools.first_male, size, rng),
        _draw(pools.first_female, size, rng),
    )
    last = _draw(pools.last, size, rng)
    return {
        "first": first,
        "last": last,
        "patient_name": _join(first, " ", last),
    }


def _date_fields(age: Ints, rng: np.random.Generator) -> dict[str, Text]:
    first = np.datetime64(f"{STUDY_YEARS[0]}-01-01", "D").astype(np.int64)
    last = np.datetime64(f"{STUDY_YEARS[1]}-12-31", "D").astype(np.int64)
    admission = rng.integers(first, last + 1, age.size).astype("datetime64[D]")
    birth = _birth_dates(admission, age, rng)
    return {
        "admission_date": pc.cast(pa.array(admission), pa.string()),
        "birth_date": pc.cast(pa.array(birth), pa.string()),
    }


def _birth_dates(admission: Days, age: Ints, rng: np.random.Generator) -> Days:
    """Draw dates of birth uniformly among those giving ``age`` at ``admission``.

    A patient is ``age`` years old from their ``age``-th birthday up to the
    day before the next; someone born on 29 February has their birthday on
    28 February in other years.

    Parameters
    ----------
    admission : numpy.ndarray
        Admission dates, ``datetime64[D]``.
    age : numpy.ndarray
        Whole years of age at admission, same length.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    numpy.ndarray
        Dates of birth, ``datetime64[D]``.

    """
    latest = _years_before(admission, age)
    earliest = _years_before(admission, age + 1) + np.timedelta64(1, "D")
    span = (latest - earliest).astype(np.int64) + 1
    birth: Days = earliest + rng.integers(0, span).astype("timedelta64[D]")
    return birth


def _years_before(days: Days, years: Ints) -> Days:
    """Same month and day ``years`` earlier; 29 February becomes the 28th."""
    months = days.astype("datetime64[M]")
    day_of_month = (days - months.astype("datetime64[D]")).astype(np.int64)
    target = (months.astype(np.int64) - 12 * years).astype("datetime64[M]")
    start = target.astype("datetime64[D]")
    length = ((target + 1).astype("datetime64[D]") - start).astype(np.int64)
    same_day: Days = start + np.minimum(day_of_month, length - 1).astype(
        "timedelta64[D]"
    )
    return same_day


def _address_fields(
    patients: _Patients,
    places: Mapping[int, _Places],
    pools: _Pools,
    restricted: int,
    rng: np.random.Generator,
) -> dict[str, Text]:
    size = len(patients)
    place = np.zeros(size, dtype=np.int64)
    offset = 0
    for hospital, own in places.items():
        rows = np.flatnonzero(patients.hospital == hospital)
        place[rows] = offset + rng.integers(0, len(own.city), rows.size)
        offset += len(own.city)
    table = _Places(
        *([v for own in places.values() for v in getattr(own, name)] for name in _PLACE)
    )
    region = _plant_restricted_zips(place, offset, restricted, rng)
    states = table.state + list(RESTRICTED_ZIP3_STATES.values())
    zip3 = table.zip3 + list(RESTRICTED_ZIP3_STATES)
    number = rng.integers(1, 10_000, size)
    street = {
        "number": _text(number),
        "street": _draw(pools.street, size, rng),
        "unit": _text(rng.integers(1, 1000, size)),
    }
    return {
        "street_address": _render(_STREET_FORMATS, _pick((8, 1, 1), size, rng), street),
        "city": pa.array(table.city).take(place),
        "area_code": pa.array(table.area_code).take(place),
        "state": pa.array(states).take(region),
        "zip": _join(
            pa.array(zip3).take(region), _padded(rng.integers(1, 100, size), 2)
        ),
    }


def _plant_restricted_zips(
    place: Ints, num_places: int, count: int, rng: np.random.Generator
) -> Ints:
    """Move ``count`` patients to restricted ZIP areas, one with a leading 0.

    Returns each row's index into the places followed by the restricted
    prefixes (for state and ZIP; the city stays the patient's own).
    """
    prefixes = list(RESTRICTED_ZIP3_STATES)
    leading_zero = [i for i, p in enumerate(prefixes) if p.startswith("0")]
    rows = rng.choice(place.size, min(count, place.size), replace=False)
    chosen = rng.integers(0, len(prefixes), rows.size)
    chosen[0] = rng.choice(leading_zero)
    region = place.copy()
    region[rows] = num_places + chosen
    return region


def _number_fields(
    numbers: _Numbers, area_code: Text, rng: np.random.Generator
) -> dict[str, Text]:
    size = numbers.mrn.size
    ssn_area, ssn_group, ssn_serial = _ssn_parts(numbers.ssn)
    phone = {
        "area": area_code,
        "exchange": _text(numbers.subscriber // 10**4 + 200),
        "line": _padded(numbers.subscriber % 10**4, 4),
        "extension": _text(rng.integers(100, 100_000, size)),
    }
    return {
        "mrn": _padded(numbers.mrn, 8),
        "ssn": _join(ssn_area, "-", ssn_group, "-", ssn_serial),
        "health_plan_id": _join("HP", _padded(numbers.health_plan, 10)),
        "phone": _render(_PHONE_FORMATS, _pick(_PHONE_WEIGHTS, size, rng), phone),
        "exchange": phone["exchange"],
        "line": phone["line"],
    }


# Valid SSN areas: 001-899 except 666 (as Faker's); groups 01-99; serials 0001-9999.
_SSN_AREAS = np.setdiff1d(np.arange(1, 900), [666])


def _ssn_parts(index: Ints) -> tuple[Text, Text, Text]:
    area, rest = np.divmod(index, 99 * 9999)
    group, serial = np.divmod(rest, 9999)
    return (
        _padded(_SSN_AREAS[area], 3),
        _padded(group + 1, 2),
        _padded(serial + 1, 4),
    )


def _email(fields: Mapping[str, Text], pools: _Pools, rng: np.random.Generator) -> Text:
    size = len(fields["first"])
    first = pc.utf8_lower(fields["first"])
    parts = {
        "first": first,
        "initial": pc.utf8_slice_codeunits(first, 0, 1),
        "last": pc.utf8_lower(fields["last"]),
        "number": _text(rng.integers(1, 100, size)),
        "domain": _draw(pools.email_domain, size, rng),
    }
    return _render(_EMAIL_FORMATS, _pick((3, 2, 2), size, rng), parts)


# --- vectorised text (Arrow compute kernels) -----------------------------------


def _draw(pool: Text, size: int, rng: np.random.Generator) -> Text:
    """``size`` values drawn uniformly, with replacement, from ``pool``."""
    return pool.take(rng.integers(0, len(pool), size))


def _pick(weights: Sequence[int], size: int, rng: np.random.Generator) -> Ints:
    """Choose a template index per row with the given relative weights."""
    p = np.asarray(weights, dtype=float)
    return rng.choice(len(weights), size, p=p / p.sum())


def _render(templates: Sequence[str], choice: Ints, fields: Mapping[str, Text]) -> Text:
    """Fill ``templates[choice[i]]`` with row ``i`` of ``fields``.

    Rows are grouped by template, each group is filled with one join, and
    one final take puts the rows back in order.
    """
    order = np.argsort(choice, kind="stable")
    bounds = np.cumsum(np.bincount(choice, minlength=len(templates)))
    groups = np.split(order, bounds[:-1])
    filled = [
        _fill(template, fields, rows)
        for template, rows in zip(templates, groups, strict=True)
    ]
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    return pa.concat_arrays(filled).take(position)


def _fill(template: str, fields: Mapping[str, Text], rows: Ints) -> Text:
    def field(name: str) -> Text:
        derive = _DERIVED_FIELDS.get(name)
        return fields[name].take(rows) if derive is None else derive(field)

    parts: list[Text | str] = []
    for literal, name, _, _ in string.Formatter().parse(template):
        if literal:
            parts.append(literal)
        if name is not None:
            parts.append(field(name))
    if all(isinstance(part, str) for part in parts):
        return pa.repeat(template, rows.size)
    return _join(*parts)


def _us_date(iso: Text) -> Text:
    """ISO dates (YYYY-MM-DD) as MM/DD/YYYY."""
    return _join(
        pc.utf8_slice_codeunits(iso, 5, 7),
        "/",
        pc.utf8_slice_codeunits(iso, 8, 10),
        "/",
        pc.utf8_slice_codeunits(iso, 0, 4),
    )


# Other spellings of identifiers that notes use, derived only on the rows
# whose note mentions them; each gets the stored fields through ``field``.
_DERIVED_FIELDS: Mapping[str, Callable[[Callable[[str], Text]], Text]] = {
    "last_first": lambda field: _join(field("last"), ", ", field("first")),
    "birth_date_us": lambda field: _us_date(field("birth_date")),
    "admission_date_us": lambda field: _us_date(field("admission_date")),
    "ssn_digits": lambda field: pc.replace_substring(field("ssn"), "-", ""),
    "phone_digits": lambda field: _join(
        field("area_code"), field("exchange"), field("line")
    ),
}


def _join(*parts: Text | str) -> Text:
    return pc.binary_join_element_wise(*parts, "")


def _text(values: Ints) -> Text:
    return pc.cast(pa.array(values), pa.string())


def _padded(values: Ints, width: int) -> Text:
    """Non-negative integers as decimal strings zero-padded to ``width``."""
    return pc.utf8_lpad(_text(values), width=width, padding="0")


# --- files --------------------------------------------------------------------


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    # Arrow's writer: ten times faster than pandas' on a 1M-row export.
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), sink)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, engine="pyarrow")
    return buffer.getvalue()
