import json

import pandas as pd
import pytest

from hospfed.common.datasets import (
    DEFAULT_RAW_SCHEMA,
    FED_HEART_RAW_SCHEMA,
    FED_HEART_SCHEMA,
    resolve_schema,
)
from hospfed.common.errors import ConfigError, SchemaError
from hospfed.common.schema import (
    dump_schema,
    dumps_schema,
    load_schema,
    loads_schema,
)

HAND_WRITTEN = """\
# St Elsewhere's export
format = "hospfed-schema"
format-version = 1
name = "st-elsewhere-raw"
version = 3
label = "outcome"

[[columns]]
name = "mrn"
kind = "string"
role = "identifier"
deid = "pseudonymise"
phi = "mrn"
pattern = "[0-9]{8}"

[[columns]]
name = "seen"
kind = "date"
role = "date"
deid = "shift"
date-format = "%d.%m.%Y"

[[columns]]
name = "cp"
kind = "category"
levels = [1, 2, 3, 4]
nullable = true

[[columns]]
name = "outcome"
kind = "int"
role = "label"
minimum = 0
maximum = 1
"""


@pytest.mark.parametrize("schema", [FED_HEART_RAW_SCHEMA, FED_HEART_SCHEMA])
@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_schema_files_round_trip(tmp_path, schema, suffix):
    path = tmp_path / f"schema{suffix}"
    dump_schema(schema, path)
    loaded = load_schema(path)
    assert loaded.fingerprint() == schema.fingerprint()
    assert loaded.canonical() == schema.canonical()
    assert loads_schema(dumps_schema(schema)) == loaded or (
        loads_schema(dumps_schema(schema)).fingerprint() == schema.fingerprint()
    )
    assert (
        loads_schema(dumps_schema(schema, fmt="toml"), fmt="toml").fingerprint()
        == schema.fingerprint()
    )


def test_a_hand_written_file_loads(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(HAND_WRITTEN)
    schema = load_schema(path)
    assert (schema.name, schema.version, schema.label) == (
        "st-elsewhere-raw",
        3,
        "outcome",
    )
    assert schema.column("seen").date_format == "%d.%m.%Y"
    assert schema.column("cp").levels == (1, 2, 3, 4)
    assert schema.patient_key == "mrn"
    schema.validate(
        pd.DataFrame(
            {
                "mrn": ["00000001"],
                "seen": ["31.12.1999"],
                "cp": [2.0],
                "outcome": [1],
            }
        )
    )
    assert (
        loads_schema(dumps_schema(schema, fmt="toml"), fmt="toml").fingerprint()
        == schema.fingerprint()
    )


def test_json_keys_are_the_schema_file_keys():
    document = json.loads(dumps_schema(FED_HEART_RAW_SCHEMA))
    assert document["format"] == "hospfed-schema"
    assert document["format-version"] == 1
    state = next(c for c in document["columns"] if c["name"] == "state")
    assert state == {
        "name": "state",
        "kind": "string",
        "role": "quasi_identifier",
        "deid": "drop",
        "pattern": "[A-Z]{2}",
    }


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("version = 3", "version = "), r"not valid TOML: .*line 5"),
        (
            lambda t: t.replace('"hospfed-schema"', '"other"'),
            "not a hospfed schema file",
        ),
        (
            lambda t: t.replace("format-version = 1", "format-version = 2"),
            "format-version 2 is not supported; this hospfed reads format-version 1",
        ),
        (
            lambda t: t.replace('label = "outcome"', 'label = "outcome"\nowner = "me"'),
            "unknown key 'owner'",
        ),
        (
            lambda t: t.replace("maximum = 1", "maxmum = 1"),
            r"line 28 \(\[\[columns\]\] #4\), column 'outcome': unknown key 'maxmum'",
        ),
        (
            lambda t: t.replace("minimum = 0", 'minimum = "zero"'),
            r"column 'outcome': field 'minimum' must be a number",
        ),
        (
            lambda t: t.replace('kind = "category"\n', ""),
            r"#3\), column 'cp': missing 'kind'",
        ),
        (
            lambda t: t.replace('deid = "pseudonymise"', 'deid = "keep"'),
            r"line 7 .*column 'mrn'.*cannot use deid 'keep' under Safe Harbor",
        ),
        (lambda t: t.replace('name = "cp"', 'name = "mrn"'), "duplicate column names"),
        (
            lambda t: t.replace('label = "outcome"', 'label = "survival"'),
            "label 'survival' not a column",
        ),
        (
            lambda t: t.replace('deid = "pseudonymise"', 'deid = "drop"'),
            "needs a patient key",
        ),
    ],
)
def test_bad_schema_files_are_refused_with_the_place_named(tmp_path, edit, message):
    path = tmp_path / "bad.toml"
    path.write_text(edit(HAND_WRITTEN))
    with pytest.raises(ConfigError, match=message) as info:
        load_schema(path)
    assert str(path) in str(info.value)


def test_bad_json_names_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "format": "hospfed-schema",\n  "name": \n}')
    with pytest.raises(ConfigError, match=r"not valid JSON: .*line 4, column 1"):
        load_schema(path)
    with pytest.raises(SchemaError, match="not valid JSON"):
        loads_schema("{")


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read it"):
        load_schema(tmp_path / "missing.toml")


def test_resolve_schema_takes_a_builtin_name_or_a_path(tmp_path):
    assert resolve_schema(DEFAULT_RAW_SCHEMA) is FED_HEART_RAW_SCHEMA
    assert resolve_schema("fed-heart-disease") is FED_HEART_SCHEMA
    path = tmp_path / "mine.toml"
    path.write_text(HAND_WRITTEN)
    assert resolve_schema(str(path)).name == "st-elsewhere-raw"
    with pytest.raises(
        ConfigError, match=r"unknown schema 'nope'.*fed-heart-disease-raw"
    ):
        resolve_schema("nope")


NOTE_COLUMN = """
[[columns]]
name = "note"
kind = "string"
role = "free_text"
nullable = true
"""


def test_free_text_without_deid_is_refused_naming_the_column(tmp_path):
    # Format version 1 read this as "scrub"; hospfed no longer guesses.
    path = tmp_path / "notes.toml"
    path.write_text(HAND_WRITTEN + NOTE_COLUMN)
    with pytest.raises(ConfigError, match=r"column 'note': a free-text column") as e:
        load_schema(path)
    assert "\n" not in str(e.value) and "line 35" in str(e.value)


def test_saying_scrub_gives_the_contract_version_1_gave_with_its_fingerprint():
    from hospfed.common.schema import Column, DatasetSchema

    scrubbed = loads_schema(
        HAND_WRITTEN + NOTE_COLUMN.replace("nullable", 'deid = "scrub"\nnullable'),
        fmt="toml",
    )
    assert scrubbed.column("note").action == "scrub"
    # The canonical form leaves "scrub" unsaid for free text, as version 1 did.
    canonical = scrubbed.canonical()["columns"][-1]
    assert "deid" not in canonical
    dropped = loads_schema(
        HAND_WRITTEN + NOTE_COLUMN.replace("nullable", 'deid = "drop"\nnullable'),
        fmt="toml",
    )
    assert dropped.fingerprint() != scrubbed.fingerprint()
    assert "note" not in dropped.deidentified().column_names
    # In code, free text is dropped unless told; written files always say so.
    in_code = Column("note", "string", "free_text")
    assert in_code.action == "drop"
    schema = DatasetSchema("s-raw", 1, (in_code, Column("y", "int", "label")), "y")
    assert (
        schema.fingerprint()
        == DatasetSchema(
            "s-raw",
            1,
            (
                Column("note", "string", "free_text", deid="drop"),
                Column("y", "int", "label"),
            ),
            "y",
        ).fingerprint()
    )
    for fmt in ("toml", "json"):
        again = loads_schema(dumps_schema(schema, fmt=fmt), fmt=fmt)
        assert again.column("note").action == "drop"
        assert again.fingerprint() == schema.fingerprint()


def test_keeping_free_text_any_other_way_is_refused():
    from hospfed.common.schema import Column

    for action in ("keep", "pseudonymise", "sideways"):
        with pytest.raises(ConfigError, match="column 'note'") as e:
            loads_schema(
                HAND_WRITTEN
                + NOTE_COLUMN.replace("nullable", f'deid = "{action}"\nnullable'),
                fmt="toml",
            )
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="column 'note'"):
        Column("note", "float", "free_text", deid="scrub")
