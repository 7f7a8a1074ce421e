"""Schema files: the documented, versioned format a hospital writes its contract in.

A schema file is TOML (read with the standard library's ``tomllib``; this
module writes it), so it can be written and reviewed by hand::

    # hospfed dataset schema
    format = "hospfed-schema"       # required, always this
    format-version = 1              # required; this hospfed reads version 1
    name = "st-elsewhere-raw"       # the contract's name
    version = 1                     # bump it whenever a column changes
    label = "num"                   # the label column
    stage = "raw"                   # optional: "raw" (default) or "deidentified"

    [[columns]]                     # one table per column, in file order
    name = "mrn"
    kind = "string"                 # float, int, category, string or date
    role = "identifier"             # feature, label, identifier, quasi_identifier,
                                    # date, free_text, partition or pseudonym
    deid = "pseudonymise"           # optional: keep, drop, pseudonymise, year,
                                    # shift, zip3, age_cap or scrub (else the
                                    # role's default)
    phi = "mrn"                     # optional Safe Harbor category (name,
                                    # geographic, zip, date, age, phone, ...)
    pattern = "[0-9]{8}"            # optional, string columns: RE2 regex every
                                    # value must match in full
    nullable = false                # optional, default false

    [[columns]]
    name = "admission_date"
    kind = "date"
    role = "date"
    deid = "year"
    date-format = "%Y-%m-%d"        # optional, date columns: strptime format

    [[columns]]
    name = "age"
    kind = "int"
    role = "quasi_identifier"
    deid = "age_cap"
    minimum = 0                     # optional bounds of numeric columns
    maximum = 120

    [[columns]]
    name = "cp"
    kind = "category"
    levels = [1, 2, 3, 4]           # allowed values of a category column

    [[columns]]
    name = "note"
    kind = "string"
    role = "free_text"
    deid = "drop"                   # required for free text: "drop", or "scrub"
                                    # to keep it with identifiers removed

    [[columns]]
    name = "steps"
    kind = "int"
    reviewed = "daily step count from the wearable, not an identifier"
                                    # optional, kept columns: why a column that
                                    # looks like an identifier at prepare time
                                    # (one value per row; SSN, phone, ZIP,
                                    # yyyymmdd or age-over-89 shaped values) is
                                    # not one; the prepare report repeats it

Free text is not a model input and is dropped unless a column says
``deid = "scrub"``. A ``free_text`` column of a raw schema file must say
which: format version 1 read a missing ``deid`` there as ``scrub``, and
rather than guess, this hospfed refuses such a file with a one-line error
naming the column. Adding ``deid = "scrub"`` gives exactly the contract the
file had before, with the same fingerprint (the canonical form leaves
``scrub`` unsaid for free text, as version 1 did); written files always say
it.

The same document can be written as JSON (the same keys, ``columns`` a list
of objects): a file ending in ``.json`` is read as JSON, any other as TOML.
JSON is also how a prepared dataset and a training run carry their schema
(:func:`dumps_schema`, :func:`loads_schema`); :func:`dump_schema` and
:func:`load_schema` write and read files. Unknown keys are refused (a
typo must not silently drop a rule), and every error names the file, the
line (of the column's ``[[columns]]`` header in TOML) and the field.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, cast

import tomli_w

from hospfed.common.errors import ConfigError, SchemaError
from hospfed.common.files import atomic_write
from hospfed.common.schema.columns import Column
from hospfed.common.schema.contract import DatasetSchema

__all__ = [
    "SCHEMA_FORMAT",
    "SCHEMA_FORMAT_VERSION",
    "SchemaFormat",
    "dump_schema",
    "dumps_schema",
    "load_schema",
    "loads_schema",
]

SCHEMA_FORMAT = "hospfed-schema"
"""The value of a schema file's ``format`` key."""

SCHEMA_FORMAT_VERSION = 1
"""The schema file format this hospfed reads and writes."""

SchemaFormat = Literal["json", "toml"]

_TOP_KEYS = ("format", "format-version", "name", "version", "label", "stage", "columns")
_COLUMN_KEYS = {
    "name": "name",
    "kind": "kind",
    "role": "role",
    "deid": "deid",
    "phi": "phi",
    "nullable": "nullable",
    "minimum": "minimum",
    "maximum": "maximum",
    "levels": "levels",
    "date-format": "date_format",
    "pattern": "pattern",
    "reviewed": "reviewed",
}
"""Column keys of the file, and the :class:`Column` field each one sets."""
_TEXT_FIELDS = (
    "name",
    "kind",
    "role",
    "deid",
    "phi",
    "date-format",
    "pattern",
    "reviewed",
)
_COLUMN_HEADER = re.compile(r"^\s*\[\[\s*columns\s*\]\]", re.MULTILINE)


def load_schema(path: Path) -> DatasetSchema:
    """Read a schema file.

    Parameters
    ----------
    path : Path
        A schema file (see the module documentation): JSON if its name ends
        in ``.json``, else TOML.

    Returns
    -------
    DatasetSchema
        The contract it describes.

    Raises
    ------
    ConfigError
        If the file cannot be read, is not valid TOML, is not a hospfed schema
        of a supported format version, or describes an invalid or unsafe
        contract; the message names the file, line and field.

    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"schema file {path}: cannot read it ({exc.strerror})"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"schema file {path}: not UTF-8 text") from None
    source = f"schema file {path}"
    if path.suffix.lower() == ".json":
        return _from_json(text, source)
    return _from_toml(text, source)


def loads_schema(
    text: str, *, fmt: SchemaFormat = "json", source: str = "schema"
) -> DatasetSchema:
    """Read a schema from text (``dumps_schema``'s output, or a file's content).

    Parameters
    ----------
    text : str
        The document.
    fmt : {"json", "toml"}
        Its format. JSON is how prepared datasets and training runs carry a
        schema; TOML is how people write one.
    source : str
        How to name the document in error messages.

    Returns
    -------
    DatasetSchema
        The contract it describes.

    Raises
    ------
    SchemaError
        If the text is not a valid schema document (JSON).
    ConfigError
        If the text is not a valid schema document (TOML: a person's file).

    """
    if fmt == "toml":
        return _from_toml(text, source)
    try:
        return _from_json(text, source)
    except ConfigError as exc:
        raise SchemaError(str(exc)) from None


def _from_json(text: str, source: str) -> DatasetSchema:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{source}: not valid JSON: {exc.msg} (at line {exc.lineno}, column "
            f"{exc.colno})"
        ) from None
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: a schema is a JSON object")
    return _from_document(document, source, lines=[])


def _from_toml(text: str, source: str) -> DatasetSchema:
    """Parse a schema from TOML text (what :func:`load_schema` reads).

    Parameters
    ----------
    text : str
        The TOML document.
    source : str
        How to name the document in error messages.

    Returns
    -------
    DatasetSchema
        The contract it describes.

    Raises
    ------
    ConfigError
        As :func:`load_schema`.

    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    lines = [text.count("\n", 0, m.start()) + 1 for m in _COLUMN_HEADER.finditer(text)]
    return _from_document(document, source, lines=lines)


def _from_document(
    document: Mapping[str, Any], source: str, *, lines: list[int]
) -> DatasetSchema:
    _check_header(document, source)
    entries = document.get("columns")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{source}: no [[columns]]; a schema needs at least one")
    columns = tuple(
        _column(entry, f"{source}, {_where(number, lines)}")
        for number, entry in enumerate(entries)
    )
    if document.get("stage", "raw") == "raw":
        for number, entry in enumerate(entries):
            _check_free_text_is_explicit(entry, f"{source}, {_where(number, lines)}")
    try:
        return DatasetSchema(
            name=_text(document, "name", source),
            version=_whole(document, "version", source),
            columns=columns,
            label=_text(document, "label", source),
            stage=document.get("stage", "raw"),
        )
    except ValueError as exc:  # ConfigError is a ValueError too
        raise ConfigError(
            f"{_locate(str(exc), columns, source, lines)}: {exc}"
        ) from None


def _locate(
    message: str, columns: tuple[Column, ...], source: str, lines: list[int]
) -> str:
    """The source, and the line of the column a message starts by naming."""
    named = re.match(r"column '([^']*)'", message)
    names = [c.name for c in columns]
    if named is None or named.group(1) not in names:
        return source
    return f"{source}, {_where(names.index(named.group(1)), lines)}"


def _check_free_text_is_explicit(entry: Mapping[str, Any], where: str) -> None:
    """Refuse a raw free-text column that does not say what happens to it.

    Format version 1 read a free-text column without ``deid`` as ``scrub``;
    this hospfed drops free text unless told to keep it, and guesses neither
    way for an existing file: the file must say it. Adding ``deid = "scrub"``
    gives exactly the contract (and fingerprint) the file had.
    """
    if entry.get("role") == "free_text" and "deid" not in entry:
        raise ConfigError(
            f"{where}, column {entry.get('name')!r}: a free-text column must say "
            'deid = "drop" (recommended: free text is not a model input) or '
            'deid = "scrub" (kept, identifiers removed; what format-version 1 '
            "assumed when deid was left out)"
        )


def _check_header(document: Mapping[str, Any], source: str) -> None:
    kind = document.get("format")
    if kind != SCHEMA_FORMAT:
        raise ConfigError(
            f"{source}: not a hospfed schema file (format = {kind!r}; a schema "
            f'file starts with format = "{SCHEMA_FORMAT}")'
        )
    version = document.get("format-version")
    if version != SCHEMA_FORMAT_VERSION:
        raise ConfigError(
            f"{source}: format-version {version!r} is not supported; this hospfed "
            f"reads format-version {SCHEMA_FORMAT_VERSION} (upgrade hospfed to read "
            "newer files)"
        )
    unknown = [k for k in document if k not in _TOP_KEYS]
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {unknown[0]!r}; a schema file has "
            f"{', '.join(_TOP_KEYS)}"
        )
    stage = document.get("stage", "raw")
    if not isinstance(stage, str):
        raise ConfigError(f"{source}: field 'stage' must be text, got {stage!r}")


def _where(number: int, lines: list[int]) -> str:
    if len(lines) > number:
        return f"line {lines[number]} ([[columns]] #{number + 1})"
    return f"columns[{number}]"


def _column(entry: object, where: str) -> Column:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: a column must be a table of keys")
    name = entry.get("name")
    if isinstance(name, str):
        where = f"{where}, column {name!r}"
    unknown = [k for k in entry if k not in _COLUMN_KEYS]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; a column has "
            f"{', '.join(_COLUMN_KEYS)}"
        )
    for key in ("name", "kind"):
        if key not in entry:
            raise ConfigError(f"{where}: missing {key!r}")
    fields = {
        _COLUMN_KEYS[key]: _field(key, value, where) for key, value in entry.items()
    }
    try:
        return Column(**cast("dict[str, Any]", fields))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _field(key: str, value: object, where: str) -> object:
    if key in _TEXT_FIELDS:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: field {key!r} must be text, got {value!r}")
        return value
    if key == "nullable":
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: field 'nullable' must be true or false")
        return value
    if key == "levels":
        if not isinstance(value, list) or not all(_is_number(v) for v in value):
            raise ConfigError(f"{where}: field 'levels' must be a list of numbers")
        return tuple(value)
    if not _is_number(value):
        raise ConfigError(f"{where}: field {key!r} must be a number, got {value!r}")
    return value


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(document: Mapping[str, Any], key: str, source: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{source}: field {key!r} must be non-empty text")
    return value


def _whole(document: Mapping[str, Any], key: str, source: str) -> int:
    value = document.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{source}: field {key!r} must be a whole number from 1")
    return value


def _dumps_toml(schema: DatasetSchema) -> str:
    """Write a schema as a schema file's TOML text (``tomli_w``)."""
    header = "# hospfed dataset schema (see hospfed.common.schema.file)\n"
    return header + tomli_w.dumps(_document(schema))


def _column_items(column: Column, stage: str) -> list[tuple[str, object]]:
    items: list[tuple[str, object]] = []
    for key, field in _COLUMN_KEYS.items():
        value = getattr(column, field)
        if field == "deid" and value is None and column.role == "free_text":
            # Always said for raw free text: a reader must not have to guess.
            value = column.action if stage == "raw" else None
        if value is None or (field == "nullable" and value is False):
            continue
        if field == "role" and value == "feature":
            continue
        items.append((key, value))
    return items


def _document(schema: DatasetSchema) -> dict[str, object]:
    """The schema file's keys as data (options at their defaults left out)."""
    document: dict[str, object] = {
        "format": SCHEMA_FORMAT,
        "format-version": SCHEMA_FORMAT_VERSION,
        "name": schema.name,
        "version": schema.version,
        "label": schema.label,
    }
    if schema.stage != "raw":
        document["stage"] = schema.stage
    document["columns"] = [
        {
            key: list(v) if isinstance(v, tuple) else v
            for key, v in _column_items(c, schema.stage)
        }
        for c in schema.columns
    ]
    return document


def _dumps_json(schema: DatasetSchema) -> str:
    """Write a schema as indented JSON (the schema file's keys)."""
    return json.dumps(_document(schema), indent=2, ensure_ascii=False) + "\n"


def dumps_schema(schema: DatasetSchema, *, fmt: SchemaFormat = "json") -> str:
    """Write a schema as text that :func:`loads_schema` reads back.

    Parameters
    ----------
    schema : DatasetSchema
        The contract.
    fmt : {"json", "toml"}
        JSON (indented, as prepared datasets and runs carry it) or the TOML
        of a schema file.

    Returns
    -------
    str
        The document, options at their defaults left out.

    """
    return _dumps_toml(schema) if fmt == "toml" else _dumps_json(schema)


def dump_schema(schema: DatasetSchema, path: Path) -> None:
    """Write ``schema`` to the file ``path``, atomically.

    Parameters
    ----------
    schema : DatasetSchema
        The contract.
    path : Path
        Destination (its directory must exist): JSON if its name ends in
        ``.json``, else TOML.

    """
    fmt: SchemaFormat = "json" if path.suffix.lower() == ".json" else "toml"
    atomic_write(path, dumps_schema(schema, fmt=fmt).encode("utf-8"))
