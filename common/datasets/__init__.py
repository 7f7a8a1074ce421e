"""Built-in federations, and the schemas ``--schema`` accepts by name.

Fed-Heart-Disease is the one built in: the four real UCI centres with
FLamby's protocol (:mod:`~hospfed.common.datasets.heart`), the contract of a
hospital's raw export and what it de-identifies to
(:mod:`~hospfed.common.datasets.heart_schema`), and synthetic identities
(:mod:`~hospfed.common.datasets.identities`) joined onto the real rows for
demo exports (:mod:`~hospfed.common.datasets.heart_export`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from hospfed.common.datasets.heart_schema import FED_HEART_RAW_SCHEMA, FED_HEART_SCHEMA
from hospfed.common.errors import ConfigError
from hospfed.common.schema import DatasetSchema, load_schema
from hospfed.common.task import LearningTask, load_task

__all__ = [
    "BUILTIN_SCHEMAS",
    "BUILTIN_TASKS",
    "DEFAULT_RAW_SCHEMA",
    "FED_HEART_RAW_SCHEMA",
    "FED_HEART_SCHEMA",
    "FED_HEART_TASK",
    "resolve_schema",
    "resolve_task",
]

_T = TypeVar("_T")

DEFAULT_RAW_SCHEMA = FED_HEART_RAW_SCHEMA.name
"""The raw-export schema ``prepare`` uses when none is named."""

BUILTIN_SCHEMAS: Mapping[str, DatasetSchema] = {
    schema.name: schema for schema in (FED_HEART_RAW_SCHEMA, FED_HEART_SCHEMA)
}
"""Schemas ``--schema`` accepts by name."""

FED_HEART_TASK = load_task(Path(__file__).with_name("fed-heart-disease.task.toml"))
"""Fed-Heart-Disease's learning task: FLamby's protocol, as a task file."""

BUILTIN_TASKS: Mapping[str, LearningTask] = {FED_HEART_TASK.name: FED_HEART_TASK}
"""Tasks ``--task`` accepts by name."""


def resolve_schema(name_or_path: str) -> DatasetSchema:
    """Return a built-in schema by name, or read a schema file.

    Parameters
    ----------
    name_or_path : str
        A name of :data:`BUILTIN_SCHEMAS` (such as ``"fed-heart-disease-raw"``)
        or the path of a schema file.

    Returns
    -------
    DatasetSchema
        The contract.

    Raises
    ------
    ConfigError
        If it is neither a built-in name nor a readable, valid schema file.

    """
    return _resolve(name_or_path, BUILTIN_SCHEMAS, load_schema, "schema")


def resolve_task(name_or_path: str) -> LearningTask:
    """Return a built-in task by name, or read a task file.

    Raises
    ------
    ConfigError
        If it is neither a built-in name nor a readable, valid task file.

    """
    return _resolve(name_or_path, BUILTIN_TASKS, load_task, "task")


def _resolve(
    name_or_path: str,
    builtins: Mapping[str, _T],
    load: Callable[[Path], _T],
    what: str,
) -> _T:
    if name_or_path in builtins:
        return builtins[name_or_path]
    path = Path(name_or_path)
    if not path.exists():
        raise ConfigError(
            f"unknown {what} {name_or_path!r}: not a built-in {what} "
            f"({', '.join(builtins)}) and no such file"
        )
    return load(path)
