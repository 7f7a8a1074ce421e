"""The dataset contract: columns and their roles, Safe Harbor policy, schema files.

Every hospital's data must meet a :class:`DatasetSchema`: its columns
(:class:`Column`: kind, role, allowed values and what de-identification does
to it), read and written as versioned TOML or JSON schema files
(:func:`load_schema`, :func:`dump_schema`, :func:`loads_schema`,
:func:`dumps_schema`). Values are read as the contract's types by
:func:`parse_dates` and :func:`text_array`.
"""

from hospfed.common.schema.columns import (
    ACTIONS,
    AGE_CAP,
    ALLOWED_ACTIONS,
    KINDS,
    PHI_CATEGORIES,
    PSEUDONYM_LETTERS,
    PSEUDONYM_PATTERN,
    PSEUDONYM_PREFIX,
    ROLES,
    Column,
    ColumnKind,
    ColumnRole,
    DeidAction,
    PhiCategory,
    phi_actions,
)
from hospfed.common.schema.contract import DatasetSchema
from hospfed.common.schema.file import (
    SCHEMA_FORMAT,
    SCHEMA_FORMAT_VERSION,
    SchemaFormat,
    dump_schema,
    dumps_schema,
    load_schema,
    loads_schema,
)
from hospfed.common.schema.values import is_text, parse_dates, text_array

__all__ = [
    "ACTIONS",
    "AGE_CAP",
    "ALLOWED_ACTIONS",
    "KINDS",
    "PHI_CATEGORIES",
    "PSEUDONYM_LETTERS",
    "PSEUDONYM_PATTERN",
    "PSEUDONYM_PREFIX",
    "ROLES",
    "SCHEMA_FORMAT",
    "SCHEMA_FORMAT_VERSION",
    "Column",
    "ColumnKind",
    "ColumnRole",
    "DatasetSchema",
    "DeidAction",
    "PhiCategory",
    "SchemaFormat",
    "dump_schema",
    "dumps_schema",
    "is_text",
    "load_schema",
    "loads_schema",
    "parse_dates",
    "phi_actions",
    "text_array",
]
