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
        return replace(column, deid="age_cap", phi="age")
    return column


FED_HEART_RAW_SCHEMA = DatasetSchema(
    name="fed-heart-disease-raw",
    version=1,
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
        Column("birth_date", "date", "date", deid="year", phi="date"),
        Column("admission_date", "date", "date", deid="year", phi="date"),
        Column(
            "street_address", "string", "identifier", nullable=True, phi="geographic"
        ),
        Column("city", "string", "identifier", nullable=True, phi="geographic"),
        Column("state", "string", "quasi_identifier", pattern="[A-Z]{2}"),
        Column(
            "zip", "string", "identifier", deid="zip3", phi="zip", pattern="[0-9]{5}"
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
        Column("note", "string", "free_text", nullable=True),
        *(_clinical_column(name) for name in CLINICAL_COLUMNS),
    ),
    label=CLINICAL_SCHEMA.label,
)
"""The raw Fed-Heart-Disease export (``fed-heart-disease-raw`` v1).

``mrn`` becomes a keyed pseudonym (the join key); name, SSN, street address,
city, phone, email and health plan id are dropped; dates of birth and
admission keep their year; ``state`` is kept; ``zip`` keeps its first 3
digits (``000`` in the sparsely populated areas); ages over 89 become 90;
``note`` is scrubbed of identifiers; clinical columns are kept unchanged.
Dates are ISO (``YYYY-MM-DD``).
"""

FED_HEART_SCHEMA = FED_HEART_RAW_SCHEMA.deidentified()
"""The de-identified Fed-Heart-Disease contract (``fed-heart-disease`` v1)."""
