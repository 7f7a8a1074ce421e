"""The learning task: which columns the model reads and predicts, declared not coded.

A :class:`LearningTask` says which columns of a prepared (de-identified)
dataset are model inputs and how each becomes numbers (numeric, binary, or
categorical with the levels every hospital must use, one-hot encoded), which
column is the label and its kind (binary, multi-class, continuous), what to
do with a missing value per column (drop the row, or impute a stated value),
the train/test split (fraction, seed, stratified or not; optionally a
validation split carved from the training rows, for choosing settings
without touching the test set) and the
standardisation (each hospital's own training statistics, as FLamby does;
the federation's, combined from each hospital's sums and counts; or none).
The coordinator sends the task and its :meth:`fingerprint` with every
round; each hospital builds its inputs with it
(:mod:`hospfed.client.features`) and refuses a task that does not fit its
data, naming the column.

A task file is TOML (or JSON, the same keys), versioned::

    format = "hospfed-task"
    format-version = 1
    name = "readmission-30d"
    schema = "st-elsewhere"          # the de-identified schema it reads

    [label]
    column = "readmitted"
    kind = "binary"                  # binary, multiclass or continuous
    positive = [1]                   # binary: values that mean 1 (default [1])
    negative = [0]                   #   and values that mean 0 (default [0])
    # classes = ["a", "b", "c"]      # multiclass: the classes, in order

    [[features]]
    column = "age"
    kind = "numeric"                 # numeric, binary or categorical
    missing = "impute"               # drop (the row; default) or impute
    impute = 65.0

    [[features]]
    column = "ward"
    kind = "categorical"
    levels = ["A", "B", "C"]         # every hospital uses these
    drop-first = true                # one-hot without the first level

    [split]
    train-fraction = 0.66
    seed = 43
    stratify = true                  # when every class has > 2 rows
    validation-fraction = 0.2        # carved from the training rows (default 0)
    validation-seed = 0              # its own seed

    [standardise]
    by = "hospital"                  # hospital, federation or none
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import tomli_w

from hospfed.common.errors import ConfigError
from hospfed.common.files import atomic_write
from hospfed.common.model import OutputKind
from hospfed.common.schema import DatasetSchema

__all__ = [
    "TASK_FORMAT",
    "TASK_FORMAT_VERSION",
    "Feature",
    "Label",
    "LearningTask",
    "Split",
    "check_task_reads",
    "dump_task",
    "dumps_task",
    "load_task",
    "loads_task",
]

TASK_FORMAT = "hospfed-task"
TASK_FORMAT_VERSION = 1

FeatureKind = Literal["numeric", "binary", "categorical"]
Missing = Literal["drop", "impute"]
Standardise = Literal["hospital", "federation", "none"]
Level = float | int | str
_FEATURE_KINDS: tuple[str, ...] = get_args(FeatureKind)
_MISSING: tuple[str, ...] = get_args(Missing)
_STANDARDISE: tuple[str, ...] = get_args(Standardise)
_LABEL_KINDS: tuple[str, ...] = get_args(OutputKind)


@dataclass(frozen=True, kw_only=True)
class Feature:
    """One input column and how it becomes numbers.

    Parameters
    ----------
    column : str
        The prepared dataset's column.
    kind : {"numeric", "binary", "categorical"}
        Numbers as they are; 0/1; or one-hot over ``levels``.
    levels : tuple, optional
        A categorical column's levels, the same at every hospital.
    drop_first : bool
        One-hot without the first level (FLamby's encoding).
    missing : {"drop", "impute"}
        A missing value drops its row, or is replaced by ``impute``.
    impute : float, int or str, optional
        The value a missing one becomes.

    """

    column: str
    kind: FeatureKind = "numeric"
    levels: tuple[Level, ...] = ()
    drop_first: bool = False
    missing: Missing = "drop"
    impute: Level | None = None

    def __post_init__(self) -> None:
        where = f"feature {self.column!r}"
        _check_choice(where, "kind", self.kind, _FEATURE_KINDS)
        _check_choice(where, "missing", self.missing, _MISSING)
        if self.kind == "categorical" and len(set(self.levels)) != len(self.levels):
            raise ConfigError(f"{where}: 'levels' must be distinct")
        if self.kind == "categorical" and len(self.levels) < 2:
            raise ConfigError(f"{where}: a categorical feature needs >= 2 'levels'")
        if self.kind != "categorical" and (self.levels or self.drop_first):
            raise ConfigError(f"{where}: 'levels'/'drop-first' are for categorical")
        if (self.missing == "impute") != (self.impute is not None):
            raise ConfigError(
                f"{where}: give 'impute' exactly when missing = \"impute\""
            )

    @property
    def input_names(self) -> tuple[str, ...]:
        """The model inputs this column becomes, e.g. ``("cp_2", "cp_3")``."""
        if self.kind != "categorical":
            return (self.column,)
        levels = self.levels[1:] if self.drop_first else self.levels
        return tuple(f"{self.column}_{level}" for level in levels)


@dataclass(frozen=True, kw_only=True)
class Label:
    """The column the model predicts.

    Parameters
    ----------
    column : str
        The prepared dataset's label column.
    kind : {"binary", "multiclass", "continuous"}
        The label's kind (and so the model's output and loss).
    positive, negative : tuple
        Binary: the values that mean 1 and those that mean 0; any other
        value is refused (a label of another kind).
    classes : tuple
        Multi-class: the classes in order (class ``i`` is ``classes[i]``).

    """

    column: str
    kind: OutputKind = "binary"
    positive: tuple[Level, ...] = (1,)
    negative: tuple[Level, ...] = (0,)
    classes: tuple[Level, ...] = ()

    def __post_init__(self) -> None:
        where = f"label {self.column!r}"
        _check_choice(where, "kind", self.kind, _LABEL_KINDS)
        if self.kind == "multiclass" and len(set(self.classes)) < 2:
            raise ConfigError(f"{where}: a multi-class label needs >= 2 'classes'")
        if self.kind != "multiclass" and self.classes:
            raise ConfigError(f"{where}: 'classes' is for a multi-class label")
        if self.kind == "binary" and not (self.positive and self.negative):
            raise ConfigError(f"{where}: 'positive' and 'negative' list values")
        if self.kind == "binary" and set(self.positive) & set(self.negative):
            raise ConfigError(f"{where}: a value is both 'positive' and 'negative'")


@dataclass(frozen=True, kw_only=True)
class Split:
    """Each hospital's own train/test split.

    Parameters
    ----------
    train_fraction : float
        Share of rows in the training set, in (0, 1).
    seed : int
        The split's seed (scikit-learn's ``random_state``).
    stratify : bool
        Keep the label's proportions (binary and multi-class labels, when
        every class has more than two rows at the hospital); the validation
        split too.
    validation_fraction : float
        Share of the training rows held out as the hospital's validation
        set, in [0, 1): what every choice of settings is scored on
        (``hospfed-sim tune``), so the test set is touched once, at the end.
        0 (the default) holds out nothing; the model trains on every
        training row.
    validation_seed : int
        The validation split's own seed.

    """

    train_fraction: float = 0.66
    seed: int = 43
    stratify: bool = True
    validation_fraction: float = 0.0
    validation_seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.train_fraction < 1:
            raise ConfigError(
                f"split: 'train-fraction' must be in (0, 1), got {self.train_fraction}"
            )
        if not 0 <= self.validation_fraction < 1:
            raise ConfigError(
                "split: 'validation-fraction' must be in [0, 1), got "
                f"{self.validation_fraction}"
            )

    @property
    def has_validation(self) -> bool:
        """Whether the training rows lose a validation set."""
        return self.validation_fraction > 0

    def to_document(self) -> dict[str, Any]:
        """The ``[split]`` table.

        The validation keys appear only when there is a validation set, so
        the fingerprint of a task without one is what it always was.
        """
        document: dict[str, Any] = {
            "train-fraction": self.train_fraction,
            "seed": self.seed,
            "stratify": self.stratify,
        }
        if self.has_validation:
            document["validation-fraction"] = self.validation_fraction
            document["validation-seed"] = self.validation_seed
        return document


@dataclass(frozen=True, kw_only=True)
class LearningTask:
    """A federation's learning task (see the module documentation).

    Parameters
    ----------
    name : str
        The task's name.
    schema : str
        Name of the de-identified schema whose data it reads.
    label : Label
        What is predicted.
    features : tuple of Feature
        The inputs, in order.
    split : Split
        Each hospital's train/test split.
    standardise : {"hospital", "federation", "none"}
        Scale each input by its hospital's training mean and std (FLamby),
        by the federation's (computed before round 1 from each hospital's
        sums and counts: :mod:`hospfed.common.scaling`), or not at all.

    """

    name: str
    schema: str
    label: Label
    features: tuple[Feature, ...]
    split: Split = Split()
    standardise: Standardise = "hospital"

    def __post_init__(self) -> None:
        if not self.features:
            raise ConfigError(f"task {self.name!r}: no features")
        columns = [f.column for f in self.features]
        if len(set(columns)) != len(columns):
            raise ConfigError(f"task {self.name!r}: a feature column is listed twice")
        if self.label.column in columns:
            raise ConfigError(
                f"task {self.name!r}: the label {self.label.column!r} is also a feature"
            )
        _check_choice(
            f"task {self.name!r}", "standardise", self.standardise, _STANDARDISE
        )

    @property
    def input_names(self) -> tuple[str, ...]:
        """Every model input, in order."""
        return tuple(name for f in self.features for name in f.input_names)

    @property
    def num_classes(self) -> int:
        """Classes of a multi-class label; 2 otherwise."""
        return len(self.label.classes) if self.label.kind == "multiclass" else 2

    def to_document(self) -> dict[str, Any]:
        """The task file's keys as data (what :func:`dumps_task` writes)."""
        label: dict[str, Any] = {"column": self.label.column, "kind": self.label.kind}
        if self.label.kind == "binary":
            label["positive"] = list(self.label.positive)
            label["negative"] = list(self.label.negative)
        if self.label.kind == "multiclass":
            label["classes"] = list(self.label.classes)
        return {
            "format": TASK_FORMAT,
            "format-version": TASK_FORMAT_VERSION,
            "name": self.name,
            "schema": self.schema,
            "label": label,
            "features": [_feature_document(f) for f in self.features],
            "split": self.split.to_document(),
            "standardise": {"by": self.standardise},
        }

    def fingerprint(self) -> str:
        """SHA-256 of the task's canonical JSON: hospitals and coordinator agree."""
        canonical = json.dumps(
            self.to_document(), sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def _feature_document(feature: Feature) -> dict[str, Any]:
    document: dict[str, Any] = {"column": feature.column, "kind": feature.kind}
    if feature.kind == "categorical":
        document["levels"] = list(feature.levels)
        document["drop-first"] = feature.drop_first
    document["missing"] = feature.missing
    if feature.impute is not None:
        document["impute"] = feature.impute
    return document


def _check_choice(where: str, key: str, value: object, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(
            f"{where}: {key} {value!r} is not one of {', '.join(map(repr, allowed))}"
        )


# --- reading and writing ------------------------------------------------------

_TOP_KEYS = {
    "format",
    "format-version",
    "name",
    "schema",
    "label",
    "features",
    "split",
    "standardise",
}
_LABEL_KEYS = {"column", "kind", "positive", "negative", "classes"}
_FEATURE_KEYS = {"column", "kind", "levels", "drop-first", "missing", "impute"}
_SPLIT_KEYS = {
    "train-fraction",
    "seed",
    "stratify",
    "validation-fraction",
    "validation-seed",
}
_STANDARDISE_KEYS = {"by"}


NOT_MODEL_INPUTS = frozenset({"identifier", "pseudonym", "free_text"})
"""Roles of columns no task may read: identifiers, pseudonyms, free text."""


def check_task_reads(task: LearningTask, schema: DatasetSchema) -> None:
    """Refuse a task reading a column ``schema`` does not keep, or may not feed.

    Checked by the coordinator against the run's schema and by each hospital
    against its own, so a task naming a pseudonym column is refused even
    when sent by a coordinator that skipped the check.

    Raises
    ------
    ConfigError
        Naming the task, the column and why.

    """
    for column in (*(f.column for f in task.features), task.label.column):
        if column not in schema.column_names:
            raise ConfigError(
                f"task {task.name!r} reads column {column!r}, which schema "
                f"{schema.name!r} does not keep"
            )
        role = schema.column(column).role
        if role in NOT_MODEL_INPUTS:
            raise ConfigError(
                f"task {task.name!r} reads column {column!r}, a {role} column: "
                "identifiers, pseudonyms and free text are never model inputs"
            )


def loads_task(
    text: str, *, fmt: Literal["toml", "json"] = "toml", source: str = "task"
) -> LearningTask:
    """Read a task from TOML or JSON text.

    Raises
    ------
    ConfigError
        Naming the source, the key and what is wrong.

    """
    try:
        document = tomllib.loads(text) if fmt == "toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{source}: not valid {fmt.upper()}: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: a task is a table of keys")
    return _from_document(document, source)


def load_task(path: Path) -> LearningTask:
    """Read a task file (JSON if its name ends in ``.json``, else TOML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"task file {path}: cannot read it ({exc.strerror})"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"task file {path}: not UTF-8 text") from None
    fmt: Literal["toml", "json"] = "json" if path.suffix.lower() == ".json" else "toml"
    return loads_task(text, fmt=fmt, source=f"task file {path}")


def dumps_task(task: LearningTask, *, fmt: Literal["toml", "json"] = "json") -> str:
    """Write a task as JSON (how rounds carry it) or as a TOML task file."""
    if fmt == "toml":
        return "# hospfed learning task\n" + tomli_w.dumps(task.to_document())
    return json.dumps(task.to_document(), indent=2, ensure_ascii=False) + "\n"


def dump_task(task: LearningTask, path: Path) -> None:
    """Write a task file atomically (JSON if ``path`` ends in ``.json``)."""
    fmt: Literal["toml", "json"] = "json" if path.suffix.lower() == ".json" else "toml"
    atomic_write(path, dumps_task(task, fmt=fmt).encode("utf-8"))


def _from_document(document: Mapping[str, Any], source: str) -> LearningTask:
    _check_keys(document, _TOP_KEYS, source)
    if document.get("format") != TASK_FORMAT:
        raise ConfigError(f"{source}: 'format' must be {TASK_FORMAT!r}")
    if document.get("format-version") != TASK_FORMAT_VERSION:
        raise ConfigError(
            f"{source}: format-version {document.get('format-version')!r}; this "
            f"hospfed reads version {TASK_FORMAT_VERSION}"
        )
    label = _table(document, "label", source)
    _check_keys(label, _LABEL_KEYS, f"{source}: [label]")
    split = _table(document, "split", source, required=False)
    _check_keys(split, _SPLIT_KEYS, f"{source}: [split]")
    standardise = _table(document, "standardise", source, required=False)
    _check_keys(standardise, _STANDARDISE_KEYS, f"{source}: [standardise]")
    features = document.get("features")
    if not isinstance(features, list):
        raise ConfigError(f"{source}: 'features' must be a list of [[features]] tables")
    try:
        return LearningTask(
            name=_text(document, "name", source),
            schema=_text(document, "schema", source),
            label=Label(
                column=_text(label, "column", f"{source}: [label]"),
                kind=label.get("kind", "binary"),
                positive=tuple(label.get("positive", (1,))),
                negative=tuple(label.get("negative", (0,))),
                classes=tuple(label.get("classes", ())),
            ),
            features=tuple(_feature(f, i, source) for i, f in enumerate(features, 1)),
            split=Split(
                train_fraction=float(split.get("train-fraction", 0.66)),
                seed=int(split.get("seed", 43)),
                stratify=bool(split.get("stratify", True)),
                validation_fraction=float(split.get("validation-fraction", 0.0)),
                validation_seed=int(split.get("validation-seed", 0)),
            ),
            standardise=standardise.get("by", "hospital"),
        )
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _feature(entry: object, number: int, source: str) -> Feature:
    where = f"{source}: feature {number}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table")
    _check_keys(entry, _FEATURE_KEYS, where)
    impute = entry.get("impute")
    if isinstance(impute, float) and not math.isfinite(impute):
        raise ConfigError(f"{where}: 'impute' must be a finite number or a level")
    return Feature(
        column=_text(entry, "column", where),
        kind=entry.get("kind", "numeric"),
        levels=tuple(entry.get("levels", ())),
        drop_first=bool(entry.get("drop-first", False)),
        missing=entry.get("missing", "drop"),
        impute=impute,
    )


def _table(
    document: Mapping[str, Any], key: str, source: str, *, required: bool = True
) -> Mapping[str, Any]:
    value = document.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: [{key}] must be a table")
    return value


def _text(document: Mapping[str, Any], key: str, where: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: {key!r} must be non-empty text")
    return value


def _check_keys(document: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(document) - allowed)
    if unknown:
        allowed_keys = ", ".join(sorted(allowed))
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; allowed: {allowed_keys}"
        )
