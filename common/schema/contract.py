"""The dataset schema contract every hospital's data must meet.

A :class:`DatasetSchema` names each column, its type, its allowed values, its
role (feature, label, identifier, ...) and, for a raw export, what
de-identification does to it (its ``deid`` action: keep, drop, pseudonymise,
reduce a date to its year, ...). Construction refuses contracts that break
HIPAA Safe Harbor (an identifier kept as is, a full date kept, free text not
scrubbed) with a :class:`~hospfed.common.errors.ConfigError`. ``validate``
checks a pandas frame against the contract and raises
:class:`~hospfed.common.errors.SchemaError` naming the first column that
differs and what was expected; ``deidentified`` gives the contract of the
de-identified data a raw contract produces; ``fingerprint`` gives a stable
hash so that hospitals and the coordinator can tell they agree, and
``check_matches`` names the first column on which they do not.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from itertools import zip_longest

import pandas as pd

from hospfed.common.errors import ConfigError, SchemaError
from hospfed.common.schema.columns import (
    AGE_CAP,
    ALLOWED_ACTIONS,
    DATE_ACTIONS,
    PSEUDONYM_PATTERN,
    RAW_SUFFIX,
    STAGES,
    Column,
    SchemaStage,
    phi_actions,
)


@dataclass(frozen=True)
class DatasetSchema:
    """A versioned dataset contract: ordered columns and one label column.

    Parameters
    ----------
    name : str
        Short name of the schema, e.g. ``"fed-heart-disease"``.
    version : int
        Bumped whenever a column changes.
    columns : tuple of Column
        Every column, in order.
    label : str
        Name of the label column; must be one of ``columns``.
    stage : {"raw", "deidentified"}
        ``raw``: a hospital's export, whose columns' ``deid`` actions must
        satisfy Safe Harbor. ``deidentified``: data that has been through
        de-identification (every action ``keep``, no identifier column).

    Raises
    ------
    ValueError
        If names repeat or the label is not a column (a
        :class:`~hospfed.common.errors.ConfigError`, which is a
        ``ValueError``, when the contract breaks Safe Harbor).

    """

    name: str
    version: int
    columns: tuple[Column, ...]
    label: str
    stage: SchemaStage = "raw"

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"schema {self.name!r}: duplicate column names")
        if self.label not in names:
            raise ValueError(f"schema {self.name!r}: label {self.label!r} not a column")
        if self.stage not in STAGES:
            raise ConfigError(
                f"schema {self.name!r}: unknown stage {self.stage!r}; "
                f"choose one of {', '.join(STAGES)}"
            )
        if self.stage == "raw":
            self._check_safe_harbor()
        else:
            self._check_deidentified()

    def _check_safe_harbor(self) -> None:
        for column in self.columns:
            _check_column_safe(column, is_label=column.name == self.label)
        shifted = [c.name for c in self.columns if c.action == "shift"]
        if shifted and self.patient_key is None:
            raise ConfigError(
                f"column {shifted[0]!r}: deid 'shift' needs a patient key to keep "
                "each patient's offset: set deid = 'pseudonymise' on the patient's "
                "identifier column (e.g. the MRN)"
            )

    def _check_deidentified(self) -> None:
        for column in self.columns:
            if column.role == "identifier":
                raise ConfigError(
                    f"column {column.name!r}: a de-identified schema cannot have "
                    "identifier columns; drop or pseudonymise them"
                )
            if column.deid not in (None, "keep") or column.phi is not None:
                raise ConfigError(
                    f"column {column.name!r}: a de-identified schema's columns are "
                    "kept as they are; remove its deid and phi settings"
                )

    @property
    def column_names(self) -> tuple[str, ...]:
        """Names of all columns, in order."""
        return tuple(c.name for c in self.columns)

    @property
    def text_columns(self) -> tuple[str, ...]:
        """Columns a CSV reader must read as text (``string`` and ``date``)."""
        return tuple(c.name for c in self.columns if c.kind in ("string", "date"))

    @property
    def quasi_identifiers(self) -> tuple[str, ...]:
        """Columns whose combination could single a patient out."""
        return tuple(c.name for c in self.columns if c.role == "quasi_identifier")

    @property
    def patient_key(self) -> str | None:
        """The column whose pseudonym identifies a patient (the first pseudonymised)."""
        for column in self.columns:
            if self.stage == "raw" and column.action == "pseudonymise":
                return column.name
            if self.stage == "deidentified" and column.role == "pseudonym":
                return column.name
        return None

    def column(self, name: str) -> Column:
        """Return the column called ``name``.

        Raises
        ------
        KeyError
            If there is no such column.

        """
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def validate(self, frame: pd.DataFrame) -> None:
        """Check ``frame`` against the contract.

        Raises
        ------
        SchemaError
            Naming the first column that is missing, unexpected or invalid.

        """
        expected = set(self.column_names)
        missing = [n for n in self.column_names if n not in frame.columns]
        if missing:
            raise SchemaError(
                f"schema {self.name!r} v{self.version}: missing columns {missing}"
            )
        extra = [i for i, n in enumerate(frame.columns, 1) if n not in expected]
        if extra:
            # Positions, not names: a file without its header (or with a row
            # glued to it) would show a patient's values as column names.
            raise SchemaError(
                f"schema {self.name!r} v{self.version}: {len(extra)} unexpected "
                f"columns (at positions {', '.join(map(str, extra[:10]))} of the "
                "data; names are not shown); export exactly the schema's columns"
            )
        for column in self.columns:
            column.check(frame[column.name])

    def deidentified(self, name: str | None = None) -> DatasetSchema:
        """Return the contract of the data this raw contract de-identifies to.

        Dropped columns disappear; a pseudonymised column becomes a
        ``pseudonym`` string column; a date reduced to its year becomes an
        ``int`` quasi-identifier; a shifted date stays a ``date``; a ZIP code
        becomes a 3-digit ``string`` quasi-identifier; a capped age gets the
        maximum :data:`AGE_CAP`; scrubbed free text stays ``free_text``.

        Parameters
        ----------
        name : str, optional
            Name of the result; by default this schema's name without a
            trailing ``-raw`` (``fed-heart-disease-raw`` gives
            ``fed-heart-disease``). The version is kept.

        Returns
        -------
        DatasetSchema
            A schema at stage ``deidentified`` (this one if it already is).

        """
        if self.stage == "deidentified":
            return self if name is None else replace(self, name=name)
        columns = tuple(
            out for c in self.columns if (out := _deidentified_column(c)) is not None
        )
        return DatasetSchema(
            name=name if name is not None else self.name.removesuffix(RAW_SUFFIX),
            version=self.version,
            columns=columns,
            label=self.label,
            stage="deidentified",
        )

    def canonical(self) -> dict[str, object]:
        """Return the contract as a plain dict in canonical form."""
        with_action = self.stage == "raw"
        out: dict[str, object] = {
            "name": self.name,
            "version": self.version,
            "columns": [c.canonical(with_action=with_action) for c in self.columns],
            "label": self.label,
        }
        if self.stage != "raw":
            out["stage"] = self.stage
        return out

    def fingerprint(self) -> str:
        """Return a stable SHA-256 hex digest of the contract.

        It is the digest of the canonical form (:meth:`canonical` as compact
        JSON with sorted keys), so two contracts that mean the same thing have
        the same fingerprint however they were written.
        """
        canonical = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def describe_difference(
        self, other: DatasetSchema, *, other_name: str = "the other schema"
    ) -> str | None:
        """Say how this contract differs from ``other``, or ``None`` if it does not.

        The first difference is described: a missing, extra or moved column,
        then the first field of the first column that differs, then the label,
        name, version and stage.

        Parameters
        ----------
        other : DatasetSchema
            The contract to compare with.
        other_name : str
            How to call ``other`` in the message.

        Returns
        -------
        str or None
            One line such as ``"column 'chol': kind float here, int in the
            run's schema"``, or ``None`` if the fingerprints agree.

        """
        if self.fingerprint() == other.fingerprint():
            return None
        mine, theirs = self.canonical(), other.canonical()
        difference = _columns_difference(
            _column_dicts(mine), _column_dicts(theirs), other_name
        )
        if difference is not None:
            return difference
        for field in ("label", "name", "version", "stage"):
            here, there = mine.get(field, "raw"), theirs.get(field, "raw")
            if here != there:
                return f"{field} {_shown(here)} here, {_shown(there)} in {other_name}"
        return (
            f"fingerprint {self.fingerprint()[:12]} here, "
            f"{other.fingerprint()[:12]} in {other_name}"
        )

    def check_matches(self, run_schema: DatasetSchema) -> None:
        """Refuse data prepared under a contract other than the run's.

        Parameters
        ----------
        run_schema : DatasetSchema
            The contract the training run asks for.

        Raises
        ------
        SchemaError
            Naming the first column (or field) that differs, e.g.
            ``column 'chol': kind float here, int in the run's schema``.

        """
        difference = self.describe_difference(run_schema, other_name="the run's schema")
        if difference is not None:
            raise SchemaError(
                f"data prepared under schema {self.name!r} v{self.version} does not "
                f"match the run's schema {run_schema.name!r} v{run_schema.version}: "
                f"{difference}; prepare the data again with the run's schema"
            )


def _check_column_safe(column: Column, *, is_label: bool) -> None:
    action = column.action
    if is_label and action != "keep":
        raise ConfigError(f"column {column.name!r}: the label must be kept")
    allowed = ALLOWED_ACTIONS[column.role]
    if column.kind == "date":
        allowed = tuple(a for a in allowed if a in DATE_ACTIONS)
    if column.phi is not None:
        allowed = tuple(a for a in allowed if a in phi_actions(column.phi))
    if action not in allowed:
        raise ConfigError(
            f"column {column.name!r}: {_describe_column(column)} cannot use deid "
            f"{action!r} under Safe Harbor; use "
            f"{' or '.join(repr(a) for a in allowed) or 'another role'}"
        )


def _describe_column(column: Column) -> str:
    if column.phi is not None:
        return f"a column of Safe Harbor category {column.phi!r}"
    if column.kind == "date":
        return f"a date ({column.role})"
    return f"a {column.role!r} column"


def _deidentified_column(column: Column) -> Column | None:
    action = column.action
    kept = replace(column, deid="keep", phi=None, reviewed=None)
    if action == "drop":
        return None
    if action == "pseudonymise":
        return Column(
            column.name,
            "string",
            "pseudonym",
            nullable=column.nullable,
            deid="keep",
            pattern=PSEUDONYM_PATTERN,
        )
    if action == "year":
        return Column(column.name, "int", "quasi_identifier", nullable=column.nullable)
    if action == "zip3":
        return Column(
            column.name,
            "string",
            "quasi_identifier",
            nullable=column.nullable,
            deid="keep",
            pattern="[0-9]{3}",
        )
    if action == "age_cap":
        cap = AGE_CAP if column.maximum is None else min(column.maximum, AGE_CAP)
        return replace(kept, maximum=cap)
    return kept  # keep, shift (still a date) and scrub (still free text)


def _column_dicts(canonical: dict[str, object]) -> list[dict[str, object]]:
    columns = canonical["columns"]
    assert isinstance(columns, list)
    return columns


_FIELD_ORDER = (
    "kind",
    "role",
    "deid",
    "nullable",
    "minimum",
    "maximum",
    "levels",
    "phi",
    "date_format",
    "pattern",
    "reviewed",
)


def _columns_difference(
    mine: list[dict[str, object]], theirs: list[dict[str, object]], other_name: str
) -> str | None:
    my_names = [c["name"] for c in mine]
    their_names = [c["name"] for c in theirs]
    for position, (here, there) in enumerate(zip_longest(mine, theirs), start=1):
        if here is None or (there is not None and there["name"] not in my_names):
            assert there is not None
            return f"column {there['name']!r} is missing here but in {other_name}"
        if there is None or here["name"] not in their_names:
            return f"column {here['name']!r} is here but not in {other_name}"
        if here["name"] != there["name"]:
            where = their_names.index(here["name"]) + 1
            return (
                f"column {here['name']!r} is column {position} here, "
                f"column {where} in {other_name}"
            )
        for field in _FIELD_ORDER:
            if here.get(field) != there.get(field):
                return (
                    f"column {here['name']!r}: {field} {_shown(here.get(field))} "
                    f"here, {_shown(there.get(field))} in {other_name}"
                )
    return None


def _shown(value: object) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value
    return json.dumps(value)
