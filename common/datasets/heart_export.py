"""Realistic raw hospital exports: synthetic identifiers on real clinical rows.

This module owns the *raw* Fed-Heart-Disease export, the file a hospital's
IT would hand to ``hospfed-client prepare`` and what ``hospfed-client
demo-export`` writes: 13 identifier and free-text columns
(:data:`STRING_COLUMNS`: MRN, name, SSN, dates of birth and admission,
address, phone, email, health plan id, a clinical note) followed by the 14
clinical columns in UCI coding. It assembles an export from the synthetic
identities of :mod:`~hospfed.common.datasets.identities`, seeded per
hospital, joined onto the real clinical rows of one hospital
(:func:`hospital_raw_export`) or onto rows bootstrapped from all four
(:func:`synthetic_raw_export`, vectorised, for benchmarks and the
planted-identifier test). :func:`write_raw_export` writes one atomically as
CSV or Parquet, owner-readable only, and :func:`planted_identifiers` lists
every identifier value a de-identified copy must no longer contain.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from faker import Faker

from hospfed.common.datasets.arrow_text import Ints, Text
from hospfed.common.datasets.heart import (
    CLINICAL_COLUMNS,
    EXPECTED_ROWS,
    HOSPITALS,
    load_clinical_tables,
)
from hospfed.common.datasets.identities import (
    NOTE_TEMPLATES,
    RESTRICTED_ZIP3_STATES,
    STUDY_YEARS,
    Numbers,
    Patients,
    Pools,
    draw_identifiers,
    hospital_places,
)
from hospfed.common.errors import ConfigError, SchemaError
from hospfed.common.files import atomic_write

__all__ = [
    "EXPORT_SUFFIXES",
    "IDENTIFIER_COLUMNS",
    "MAX_SYNTHETIC_ROWS",
    "NOTE_TEMPLATES",
    "RAW_EXPORT_COLUMNS",
    "RESTRICTED_ZIP3_STATES",
    "STRING_COLUMNS",
    "STUDY_YEARS",
    "hospital_raw_export",
    "planted_identifiers",
    "synthetic_raw_export",
    "write_raw_export",
]

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

MAX_SYNTHETIC_ROWS = 5_000_000
"""Largest :func:`synthetic_raw_export` (unique phone numbers run out at 8M)."""

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
    patients = Patients.of(clinical, np.full(size, index))
    start = sum(EXPECTED_ROWS[h] for h in HOSPITALS[:index])
    numbers = _federation_numbers(seed).rows(slice(start, start + size))
    pools = Pools.from_faker(fake, size)
    places = {index: hospital_places(hospital, fake, size)}
    restricted = max(3, round(_RESTRICTED_ZIP_FRACTION * size))
    identifiers = draw_identifiers(patients, numbers, pools, places, restricted, rng)
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
    patients = Patients.of(clinical, hospital)
    numbers = Numbers.draw(rng, num_rows)
    pools = Pools.from_faker(fake, _SYNTHETIC_POOL)
    places = {
        i: hospital_places(h, fake, _SYNTHETIC_PLACES) for i, h in enumerate(HOSPITALS)
    }
    restricted = max(1, round(_RESTRICTED_ZIP_FRACTION * num_rows))
    identifiers = draw_identifiers(patients, numbers, pools, places, restricted, rng)
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
        # Column names are not shown: a frame without its header would show a
        # patient's values as names.
        raise SchemaError(
            f"raw export {path}: the frame's {len(frame.columns)} columns are not "
            f"the raw export's {len(RAW_EXPORT_COLUMNS)} columns in order"
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


def _federation_numbers(seed: int) -> Numbers:
    rng = np.random.default_rng(np.random.SeedSequence([seed, _FEDERATION_STREAM]))
    return Numbers.draw(rng, sum(EXPECTED_ROWS.values()))


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
