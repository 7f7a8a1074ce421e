"""Built-in schemas: the Fed-Heart-Disease raw export and what it de-identifies to.

:data:`FED_HEART_RAW_SCHEMA` is the contract of the raw export a hospital's IT
hands to ``hospfed-client prepare`` (what ``hospfed-client demo-export``
writes): 13 identifier and free-text columns, then the 14 clinical columns of
:data:`~hospfed.common.datasets.heart.CLINICAL_SCHEMA` under the same rules. Each
column says what HIPAA Safe Harbor de-identification does to it.
:data:`FED_HEART_SCHEMA` is the de-identified contract that a training run
asks for.
"""

from __future__ import annotations

from dataclasses import replace

from hospfed.common.datasets.heart import CLINICAL_COLUMNS, CLINICAL_SCHEMA
from hospfed.common.schema import Column, DatasetSchema


def _clinical_column(name: str) -> Column:
    column = CLINICAL_SCHEMA.column(name)
    if name == "age":
        # A model feature, capped at 90 (Safe Harbor); not a quasi-identifier
        # here: k-anonymity over a clinical feature would suppress real rows.
        return replace(column, role="feature", deid="age_cap", phi="age")
    return column


FED_HEART_RAW_SCHEMA = DatasetSchema(
    name="fed-heart-disease-raw",
    version=2,
    columns=(
        Column(
            "mrn",
            "string",
            "identifier",
            deid="pseudonymise",
            phi="mrn",
            pattern="[0-9]{8}",
        ),
        Column("patient_name", "string", "identifier", nullable=True, phi="name"),
        Column(
            "ssn",
            "string",
            "identifier",
            nullable=True,
            phi="ssn",
            pattern="[0-9]{3}-[0-9]{2}-[0-9]{4}",
        ),
        Column("birth_date", "date", "date", deid="drop", phi="date"),
        Column("admission_date", "date", "date", deid="year", phi="date"),
        Column(
            "street_address", "string", "identifier", nullable=True, phi="geographic"
        ),
        Column("city", "string", "identifier", nullable=True, phi="geographic"),
        Column("state", "string", "quasi_identifier", deid="drop", pattern="[A-Z]{2}"),
        Column(
            "zip", "string", "identifier", deid="drop", phi="zip", pattern="[0-9]{5}"
        ),
        Column("phone", "string", "identifier", nullable=True, phi="phone"),
        Column("email", "string", "identifier", nullable=True, phi="email"),
        Column(
            "health_plan_id",
            "string",
            "identifier",
            nullable=True,
            phi="health_plan",
            pattern="HP[0-9]{10}",
        ),
        Column("note", "string", "free_text", nullable=True, deid="drop"),
        *(_clinical_column(name) for name in CLINICAL_COLUMNS),
    ),
    label=CLINICAL_SCHEMA.label,
)
"""The raw Fed-Heart-Disease export (``fed-heart-disease-raw`` v2).

What the model needs is the 13 clinical features, and nothing is kept that
it does not need: ``mrn`` becomes a keyed pseudonym (the join key); name,
SSN, date of birth (``age`` carries what the model needs), street address,
city, state, ZIP code, phone, email, health plan id and the free-text
``note`` are dropped; the admission date keeps its year, the one
quasi-identifier (every demo hospital has 10 or more patients per year, so
k = 5 holds without suppressing a row; state and 3-digit ZIP would not: the
Hungarian and Swiss demo patients are spread over 50 states); ages over 89
become 90; clinical columns are kept unchanged. Dates are ISO
(``YYYY-MM-DD``). Version 1 kept the birth year, state, 3-digit ZIP and
the scrubbed note.
"""

FED_HEART_SCHEMA = FED_HEART_RAW_SCHEMA.deidentified()
"""The de-identified Fed-Heart-Disease contract (``fed-heart-disease`` v2)."""
