"""Synthetic patient identities for raw hospital exports (no real person).

This module owns who the synthetic patients are: Faker pools of first names
per sex, last names, streets and e-mail domains (:class:`Pools`); the places
they live (:func:`hospital_places`: fixed cities, ZIP prefixes and area codes
around the two US hospitals, Faker placeholders elsewhere, and
:data:`RESTRICTED_ZIP3_STATES` to plant Safe Harbor restricted ZIPs); the
unique numbers behind MRNs, SSNs, health plan ids and phone numbers
(:class:`Numbers`); and :func:`draw_identifiers`, which makes every
identifier column at once, consistent with each row's age, sex and hospital
(names, dates of birth giving the real age at admission, addresses, phones,
e-mails, and clinical notes from :data:`NOTE_TEMPLATES`). Assembling an
export from them is :mod:`~hospfed.common.datasets.heart_export`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from faker import Faker

from hospfed.common.datasets.arrow_text import (
    Derived,
    Ints,
    Text,
    as_text,
    draw,
    join,
    padded,
    pick,
    render,
)
from hospfed.common.schema.safe_harbor import ZIP3_CENSUS_2000

STUDY_YEARS: tuple[int, int] = (1981, 1988)
"""First and last year of admission (the UCI collection period)."""

RESTRICTED_ZIP3_STATES: Mapping[str, str] = ZIP3_CENSUS_2000
"""Safe Harbor's restricted 3-digit ZIP prefixes (2000 Census) and their state.

Only used to plant such ZIPs; de-identification keeps its own versioned list
(``common`` cannot import it from ``client``); a test checks the two agree.
"""

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

# --- the people behind the rows ---------------------------------------------


@dataclass(frozen=True)
class Patients:
    """What identifiers must agree with: age, sex and hospital of each row."""

    age: Ints
    male: npt.NDArray[np.bool_]
    hospital: Ints

    @classmethod
    def of(cls, clinical: pd.DataFrame, hospital: Ints) -> Patients:
        """The patients of clinical rows, each from ``hospital`` (an index)."""
        return cls(
            age=clinical["age"].to_numpy().astype(np.int64),
            male=clinical["sex"].to_numpy() == 1,
            hospital=hospital,
        )

    def __len__(self) -> int:
        return len(self.age)


@dataclass(frozen=True)
class Numbers:
    """Unique numbers: MRNs, SSNs, health plan ids, phone subscriber numbers."""

    mrn: Ints  # 0 .. 10**8 - 1
    ssn: Ints  # index into the valid SSNs, see _ssn_parts
    health_plan: Ints  # 0 .. 10**10 - 1
    subscriber: Ints  # (exchange - 200) * 10**4 + line, exchange 200-999

    @classmethod
    def draw(cls, rng: np.random.Generator, size: int) -> Numbers:
        """Draw ``size`` of each number, without repeats."""
        return cls(
            mrn=rng.choice(10**8, size, replace=False),
            ssn=rng.choice(_SSN_AREAS.size * 99 * 9999, size, replace=False),
            health_plan=rng.choice(10**10, size, replace=False),
            subscriber=rng.choice(800 * 10**4, size, replace=False),
        )

    def rows(self, rows: slice) -> Numbers:
        """The numbers of some rows only."""
        return Numbers(
            self.mrn[rows],
            self.ssn[rows],
            self.health_plan[rows],
            self.subscriber[rows],
        )


@dataclass(frozen=True)
class Pools:
    """Faker values that rows are drawn from."""

    first_male: Text
    first_female: Text
    last: Text
    street: Text
    email_domain: Text

    @classmethod
    def from_faker(cls, fake: Faker, size: int) -> Pools:
        """Pools of ``size`` values (fewer e-mail domains) drawn from ``fake``."""

        def pool(value: Callable[[], str], count: int = size) -> list[str]:
            return [value() for _ in range(count)]

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
class Places:
    """Where patients live: city, state, ZIP prefix, area code, per place."""

    city: list[str]
    state: list[str]
    zip3: list[str]
    area_code: list[str]


_PLACE = ("city", "state", "zip3", "area_code")


def hospital_places(hospital: str, fake: Faker, size: int) -> Places:
    """The places a hospital's patients live in.

    The fixed places around a US hospital, else ``size`` Faker placeholder
    places (city, state, a ZIP prefix in that state, any area code).
    """
    if hospital in _US_PLACES:
        home_state, home = _US_PLACES[hospital]
        return Places(
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
    return Places(city, states, zips, area)


# --- identifiers, vectorised --------------------------------------------------


def draw_identifiers(
    patients: Patients,
    numbers: Numbers,
    pools: Pools,
    places: Mapping[int, Places],
    restricted: int,
    rng: np.random.Generator,
) -> dict[str, Text]:
    """Make every identifier column, and the note, for ``patients``.

    Each patient lives in one of ``places[patients.hospital]``, except
    ``restricted`` of them moved to a restricted ZIP area. Returns the
    :data:`~hospfed.common.datasets.heart_export.STRING_COLUMNS` and the
    parts they were made from (first and last name, area code, ...).
    """
    fields = _name_fields(patients, pools, rng)
    fields |= _date_fields(patients.age, rng)
    fields |= _address_fields(patients, places, pools, restricted, rng)
    fields |= _number_fields(numbers, fields["area_code"], rng)
    fields["email"] = _email(fields, pools, rng)
    fields["age"] = as_text(patients.age)
    choice = pick(_NOTE_WEIGHTS, len(patients), rng)
    fields["note"] = render(NOTE_TEMPLATES, choice, fields, _DERIVED_FIELDS)
    return fields


def _name_fields(
    patients: Patients, pools: Pools, rng: np.random.Generator
) -> dict[str, Text]:
    size = len(patients)
    first = pc.if_else(
        pa.array(patients.male),
        draw(pools.first_male, size, rng),
        draw(pools.first_female, size, rng),
    )
    last = draw(pools.last, size, rng)
    return {
        "first": first,
        "last": last,
        "patient_name": join(first, " ", last),
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
    patients: Patients,
    places: Mapping[int, Places],
    pools: Pools,
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
    table = Places(
        *([v for own in places.values() for v in getattr(own, name)] for name in _PLACE)
    )
    region = _plant_restricted_zips(place, offset, restricted, rng)
    states = table.state + list(RESTRICTED_ZIP3_STATES.values())
    zip3 = table.zip3 + list(RESTRICTED_ZIP3_STATES)
    number = rng.integers(1, 10_000, size)
    street = {
        "number": as_text(number),
        "street": draw(pools.street, size, rng),
        "unit": as_text(rng.integers(1, 1000, size)),
    }
    return {
        "street_address": render(_STREET_FORMATS, pick((8, 1, 1), size, rng), street),
        "city": pa.array(table.city).take(place),
        "area_code": pa.array(table.area_code).take(place),
        "state": pa.array(states).take(region),
        "zip": join(pa.array(zip3).take(region), padded(rng.integers(1, 100, size), 2)),
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
    numbers: Numbers, area_code: Text, rng: np.random.Generator
) -> dict[str, Text]:
    size = numbers.mrn.size
    ssn_area, ssn_group, ssn_serial = _ssn_parts(numbers.ssn)
    phone = {
        "area": area_code,
        "exchange": as_text(numbers.subscriber // 10**4 + 200),
        "line": padded(numbers.subscriber % 10**4, 4),
        "extension": as_text(rng.integers(100, 100_000, size)),
    }
    return {
        "mrn": padded(numbers.mrn, 8),
        "ssn": join(ssn_area, "-", ssn_group, "-", ssn_serial),
        "health_plan_id": join("HP", padded(numbers.health_plan, 10)),
        "phone": render(_PHONE_FORMATS, pick(_PHONE_WEIGHTS, size, rng), phone),
        "exchange": phone["exchange"],
        "line": phone["line"],
    }


# Valid SSN areas: 001-899 except 666 (as Faker's); groups 01-99; serials 0001-9999.
_SSN_AREAS = np.setdiff1d(np.arange(1, 900), [666])


def _ssn_parts(index: Ints) -> tuple[Text, Text, Text]:
    area, rest = np.divmod(index, 99 * 9999)
    group, serial = np.divmod(rest, 9999)
    return (
        padded(_SSN_AREAS[area], 3),
        padded(group + 1, 2),
        padded(serial + 1, 4),
    )


def _email(fields: Mapping[str, Text], pools: Pools, rng: np.random.Generator) -> Text:
    size = len(fields["first"])
    first = pc.utf8_lower(fields["first"])
    parts = {
        "first": first,
        "initial": pc.utf8_slice_codeunits(first, 0, 1),
        "last": pc.utf8_lower(fields["last"]),
        "number": as_text(rng.integers(1, 100, size)),
        "domain": draw(pools.email_domain, size, rng),
    }
    return render(_EMAIL_FORMATS, pick((3, 2, 2), size, rng), parts)


def _us_date(iso: Text) -> Text:
    """ISO dates (YYYY-MM-DD) as MM/DD/YYYY."""
    return join(
        pc.utf8_slice_codeunits(iso, 5, 7),
        "/",
        pc.utf8_slice_codeunits(iso, 8, 10),
        "/",
        pc.utf8_slice_codeunits(iso, 0, 4),
    )


# Other spellings of identifiers that notes use, derived only on the rows
# whose note mentions them; each gets the stored fields through ``field``.
_DERIVED_FIELDS: Derived = {
    "last_first": lambda field: join(field("last"), ", ", field("first")),
    "birth_date_us": lambda field: _us_date(field("birth_date")),
    "admission_date_us": lambda field: _us_date(field("admission_date")),
    "ssn_digits": lambda field: pc.replace_substring(field("ssn"), "-", ""),
    "phone_digits": lambda field: join(
        field("area_code"), field("exchange"), field("line")
    ),
}
