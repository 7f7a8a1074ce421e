"""Known answers for the schema file format, as pyca tests with NIST vectors.

A prepared dataset and a training run carry their schema's fingerprint; a
change to how a version 1 file is read, or to the fingerprint, would make
every hospital's prepared data stop matching its federation's schema. The
fingerprints below were computed by the code as it stood before the layout
change (commit af29042) and must never move.
"""

from pathlib import Path

from hospfed.common.schema import dumps_schema, load_schema, loads_schema

VECTORS = Path(__file__).parent / "vectors"
RAW_FINGERPRINT = "73258c2c58c26c14adce442732aec54565d056c9c8d0fa2ffeadd8342add63a1"
DEIDENTIFIED_FINGERPRINT = (
    "aefa28f76e3b470b489eea64f22e81aada74a0a86830949e7256b0c0d1d5cc94"
)


def test_a_version_1_toml_schema_file_loads_to_the_same_contract():
    schema = load_schema(VECTORS / "v1-schema.toml")
    assert schema.fingerprint() == RAW_FINGERPRINT
    assert schema.deidentified().fingerprint() == DEIDENTIFIED_FINGERPRINT
    assert (schema.name, schema.version, schema.label) == (
        "st-elsewhere-raw",
        3,
        "outcome",
    )
    assert [c.name for c in schema.columns] == [
        "mrn",
        "patient_name",
        "admission_date",
        "zip",
        "age",
        "cp",
        "chol",
        "outcome",
    ]
    assert schema.column("admission_date").date_format == "%d.%m.%Y"
    assert schema.column("cp").levels == (1, 2, 3, 4)


def test_the_json_form_is_what_prepared_datasets_carry():
    text = (VECTORS / "v1-schema.json").read_text()
    assert loads_schema(text).fingerprint() == RAW_FINGERPRINT
    assert dumps_schema(load_schema(VECTORS / "v1-schema.toml")) == text


def test_writing_toml_and_reading_it_back_keeps_the_fingerprint():
    schema = load_schema(VECTORS / "v1-schema.toml")
    again = loads_schema(dumps_schema(schema, fmt="toml"), fmt="toml")
    assert again.fingerprint() == RAW_FINGERPRINT
