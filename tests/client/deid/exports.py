"""Test data of the de-identification tests: secrets, raw exports, a small schema."""

import re
from dataclasses import replace

import numpy as np
import pandas as pd
from faker import Faker

from hospfed.client.deid import DeidSecrets
from hospfed.common.datasets.heart import CLINICAL_COLUMNS
from hospfed.common.datasets.heart_schema import FED_HEART_RAW_SCHEMA
from hospfed.common.schema import Column, DatasetSchema

SECRETS = DeidSecrets(pseudonym=b"p" * 32, date_shift=b"d" * 32)


OTHER_SECRETS = DeidSecrets(pseudonym=b"q" * 32, date_shift=b"e" * 32)

_KEPT_IN_V1 = {
    "birth_date": {"deid": "year"},
    "state": {"deid": "keep"},
    "zip": {"deid": "zip3"},
    "note": {"deid": "scrub"},
    "age": {"role": "quasi_identifier"},
}
NOTES_SCHEMA = DatasetSchema(
    "heart-notes-raw",
    1,
    tuple(
        replace(c, **_KEPT_IN_V1.get(c.name, {})) for c in FED_HEART_RAW_SCHEMA.columns
    ),
    FED_HEART_RAW_SCHEMA.label,
)
"""The raw heart export as the built-in schema v1 read it: the note kept and
scrubbed, birth year, state and 3-digit ZIP kept (the pipeline's hard case)."""
NOTES_OUT = NOTES_SCHEMA.deidentified()


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


def name_schema() -> DatasetSchema:
    return DatasetSchema(
        "names-raw",
        1,
        (
            Column("patient_name", "string", "identifier", phi="name"),
            Column("city", "string", "identifier", phi="geographic"),
            Column("note", "string", "free_text", nullable=True, deid="scrub"),
            Column("outcome", "int", "label"),
        ),
        "outcome",
    )
