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

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from itertools import zip_longest
from typing import Literal, get_args

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hospfed.common.errors import ConfigError, SchemaError

ColumnKind = Literal["float", "int", "category", "string", "date"]
ColumnRole = Literal[
    "feature",
    "label",
    "identifier",
    "quasi_identifier",
    "date",
    "free_text",
    "partition",
    "pseudonym",
]
DeidAction = Literal[
    "keep", "drop", "pseudonymise", "year", "shift", "zip3", "age_cap", "scrub"
]
PhiCategory = Literal[
    "name",
    "geographic",
    "zip",
    "date",
    "age",
    "phone",
    "fax",
    "email",
    "ssn",
    "mrn",
    "health_plan",
    "account",
    "licence",
    "vehicle",
    "device",
    "url",
    "ip",
    "biometric",
    "photo",
    "other",
]
"""HIPAA Safe Harbor identifier categories (45 CFR 164.514(b)(2)(i)).

``zip`` and ``age`` are split out of "geographic subdivisions" and "dates"
because Safe Harbor lets them be generalised (3-digit ZIP, ages 90+) rather
than removed.
"""
SchemaStage = Literal["raw", "deidentified"]

KINDS: tuple[ColumnKind, ...] = get_args(ColumnKind)
ROLES: tuple[ColumnRole, ...] = get_args(ColumnRole)
ACTIONS: tuple[DeidAction, ...] = get_args(DeidAction)
PHI_CATEGORIES: tuple[PhiCategory, ...] = get_args(PhiCategory)
STAGES: tuple[SchemaStage, ...] = get_args(SchemaStage)

DEFAULT_DATE_FORMAT = "%Y-%m-%d"
"""How a ``date`` column's text is parsed unless it says otherwise (ISO 8601)."""

RAW_SUFFIX = "-raw"
"""A raw schema ``x-raw`` de-identifies to a schema named ``x``."""

PSEUDONYM_PREFIX = "psn-"
PSEUDONYM_LETTERS = 24
PSEUDONYM_PATTERN = f"{PSEUDONYM_PREFIX}[a-p]{{{PSEUDONYM_LETTERS}}}"
"""Keyed pseudonyms: a prefix and 24 letters a-p (96 bits of HMAC-SHA256).

Letters only, so that no pseudonym can look like a number, a date or a
phone number to the residual-identifier scan.
"""

AGE_CAP = 90
"""Ages over 89 are reported as this one "90 or older" value (Safe Harbor)."""

DEFAULT_ACTION: Mapping[ColumnRole, DeidAction] = {
    "feature": "keep",
    "label": "keep",
    "identifier": "drop",
    "quasi_identifier": "keep",
    "date": "year",
    "free_text": "scrub",
    "partition": "keep",
    "pseudonym": "keep",
}
"""What de-identification does to a column of each role unless told otherwise."""

ALLOWED_ACTIONS: Mapping[ColumnRole, tuple[DeidAction, ...]] = {
    "feature": ("keep", "drop", "age_cap"),
    "label": ("keep",),
    "identifier": ("drop", "pseudonymise", "zip3"),
    "quasi_identifier": ("keep", "drop", "zip3", "age_cap", "year"),
    "date": ("year", "shift", "drop"),
    "free_text": ("scrub", "drop"),
    "partition": ("keep", "drop"),
    "pseudonym": ("keep", "drop"),
}
"""The actions Safe Harbor allows for each role in a raw schema."""

ACTION_KINDS: Mapping[DeidAction, tuple[ColumnKind, ...]] = {
    "pseudonymise": ("string",),
    "year": ("date",),
    "shift": ("date",),
    "zip3": ("string",),
    "age_cap": ("int", "float"),
    "scrub": ("string",),
}
"""Actions that only make sense for some column kinds."""

DATE_ACTIONS: tuple[DeidAction, ...] = ("year", "shift", "drop")

_PHI_ACTIONS: Mapping[str, tuple[DeidAction, ...]] = {
    "zip": ("zip3", "drop"),
    "age": ("age_cap", "drop"),
    "date": DATE_ACTIONS,
}
_DIRECT_IDENTIFIER_ACTIONS: tuple[DeidAction, ...] = ("drop", "pseudonymise")


def phi_actions(category: PhiCategory) -> tuple[DeidAction, ...]:
    """Return the actions Safe Harbor allows for a column of ``category``."""
    return _PHI_ACTIONS.get(category, _DIRECT_IDENTIFIER_ACTIONS)


@dataclass(frozen=True)
class Column:
    """One column of the contract.

    Parameters
    ----------
    name : str
        Column name, exactly as in the data.
    kind : {"float", "int", "category", "string", "date"}
        ``category`` columns hold one of ``levels``; ``float`` and ``int``
        hold numbers; ``string`` holds text; ``date`` holds dates, as text in
        ``date_format`` or as ``datetime64`` values.
    role : str
        What the column is for: ``feature``, ``label``, ``identifier``,
        ``quasi_identifier``, ``date``, ``free_text``, ``partition`` or
        ``pseudonym`` (a keyed pseudonym, e.g. a de-identified MRN).
    minimum, maximum : float or None
        Inclusive bounds for numeric columns.
    levels : tuple of float or None
        Allowed values of a ``category`` column (numerically coded).
    nullable : bool
        Whether missing values are allowed.
    deid : str or None
        What de-identification does to the column: ``keep``, ``drop``,
        ``pseudonymise`` (keyed HMAC-SHA256), ``year`` (date to year),
        ``shift`` (date moved by a secret per-patient offset), ``zip3``
        (ZIP code to its first 3 digits), ``age_cap`` (ages over 89 become
        90) or ``scrub`` (identifier patterns removed from free text).
        ``None`` means the role's default (:data:`DEFAULT_ACTION`).
    phi : str or None
        The Safe Harbor category of an identifier column
        (:data:`PHI_CATEGORIES`). ``name`` columns are scrubbed token by token
        from the same row's free text.
    date_format : str or None
        ``strptime`` format of a ``date`` column's text; ISO
        (:data:`DEFAULT_DATE_FORMAT`) if not given.
    pattern : str or None
        A regular expression (RE2 syntax) every value of a ``string`` column
        must match in full.

    Raises
    ------
    ConfigError
        If a kind, role, action or category is unknown, or an option does
        not fit the column's kind.

    """

    name: str
    kind: ColumnKind
    role: ColumnRole = "feature"
    minimum: float | None = None
    maximum: float | None = None
    levels: tuple[float, ...] | None = None
    nullable: bool = False
    deid: DeidAction | None = None
    phi: PhiCategory | None = None
    date_format: str | None = None
    pattern: str | None = None

    def __post_init__(self) -> None:
        self._check_choice("kind", self.kind, KINDS)
        self._check_choice("role", self.role, ROLES)
        if self.deid is not None:
            self._check_choice("deid", self.deid, ACTIONS)
        if self.phi is not None:
            self._check_choice("phi", self.phi, PHI_CATEGORIES)
        kinds = ACTION_KINDS.get(self.action)
        if kinds is not None and self.kind not in kinds:
            raise ConfigError(
                f"column {self.name!r}: deid {self.action!r} needs kind "
                f"{' or '.join(kinds)}, not {self.kind!r}"
            )
        if self.date_format is not None:
            self._check_date_format(self.date_format)
        if self.pattern is not None:
            self._check_pattern(self.pattern)

    def _check_choice(self, field: str, value: str, choices: tuple[str, ...]) -> None:
        if value not in choices:
            raise ConfigError(
                f"column {self.name!r}: unknown {field} {value!r}; "
                f"choose one of {', '.join(choices)}"
            )

    def _check_date_format(self, date_format: str) -> None:
        if self.kind != "date":
            raise ConfigError(
                f"column {self.name!r}: date_format is only for kind 'date'"
            )
        sample = dt.datetime(2001, 2, 3)
        try:
            parsed = dt.datetime.strptime(sample.strftime(date_format), date_format)
        except ValueError:
            parsed = None
        if parsed is None or parsed.date() != sample.date():
            raise ConfigError(
                f"column {self.name!r}: date_format {date_format!r} does not "
                "write and read back a whole date (year, month and day)"
            )

    def _check_pattern(self, pattern: str) -> None:
        if self.kind != "string":
            raise ConfigError(
                f"column {self.name!r}: pattern is only for kind 'string'"
            )
        try:
            pc.match_substring_regex(pa.array([""]), _anchored(pattern))
        except pa.ArrowInvalid as exc:
            raise ConfigError(
                f"column {self.name!r}: pattern {pattern!r} is not a valid RE2 "
                f"regular expression: {exc}"
            ) from None

    @property
    def action(self) -> DeidAction:
        """The de-identification action, the role's default if none was given."""
        return self.deid if self.deid is not None else DEFAULT_ACTION[self.role]

    @property
    def effective_date_format(self) -> str:
        """The format a ``date`` column's text is parsed with."""
        return self.date_format or DEFAULT_DATE_FORMAT

    def canonical(self, *, with_action: bool = True) -> dict[str, object]:
        """Return the column as a plain dict in canonical form.

        Numbers that are whole are written as integers, options at their
        default are left out (so ``deid=None`` and the role's default action
        give the same form), and a ``date`` column always states its format.
        """
        out: dict[str, object] = {
            "name": self.name,
            "kind": self.kind,
            "role": self.role,
            "minimum": _canonical_number(self.minimum),
            "maximum": _canonical_number(self.maximum),
            "levels": (
                None
                if self.levels is None
                else [_canonical_number(v) for v in self.levels]
            ),
            "nullable": self.nullable,
        }
        if with_action and self.action != DEFAULT_ACTION[self.role]:
            out["deid"] = self.action
        if self.phi is not None:
            out["phi"] = self.phi
        if self.kind == "date":
            out["date_format"] = self.effective_date_format
        if self.pattern is not None:
            out["pattern"] = self.pattern
        return out

    def check(self, values: pd.Series) -> None:
        """Raise :class:`SchemaError` if ``values`` break this column's rules."""
        missing = values.isna()
        missing_count = int(missing.sum())
        if missing_count and not self.nullable:
            raise SchemaError(
                f"column {self.name!r}: {missing_count} missing values, "
                "but the schema does not allow missing values"
            )
        if self.kind == "string":
            self._check_text(values, missing_count)
            return
        if self.kind == "date":
            self._check_dates(values, missing_count)
            return
        present = values[~missing] if missing_count else values
        if not pd.api.types.is_numeric_dtype(present):
            raise SchemaError(
                f"column {self.name!r}: expected numbers ({self.kind}), "
                f"found dtype {values.dtype}"
            )
        self._check_values(present.to_numpy(dtype=np.float64))

    def _check_values(self, values: np.ndarray) -> None:
        if self.kind == "int" and not np.all(np.equal(np.mod(values, 1), 0)):
            raise SchemaError(f"column {self.name!r}: expected whole numbers")
        if self.levels is not None:
            bad = ~np.isin(values, self.levels)
            if bad.any():
                raise SchemaError(
                    f"column {self.name!r}: {int(bad.sum())} values outside the "
                    f"allowed levels {list(self.levels)}"
                )
        low = self.minimum if self.minimum is not None else -np.inf
        high = self.maximum if self.maximum is not None else np.inf
        out = (values < low) | (values > high)
        if out.any():
            raise SchemaError(
                f"column {self.name!r}: {int(out.sum())} values outside [{low}, {high}]"
            )

    def _check_text(self, values: pd.Series, missing_count: int) -> None:
        if not is_text(_without_missing(values, missing_count)):
            raise SchemaError(
                f"column {self.name!r}: expected text (string), found dtype "
                f"{values.dtype}; read this column as text (e.g. dtype=str) "
                "so that leading zeros survive"
            )
        present_count = len(values) - missing_count
        if self.pattern is None or not present_count:
            return
        matches = pc.match_substring_regex(text_array(values), _anchored(self.pattern))
        bad = present_count - int(pc.sum(matches).as_py() or 0)
        if bad:
            raise SchemaError(
                f"column {self.name!r}: {bad} values do not match the pattern "
                f"{self.pattern!r}"
            )

    def _check_dates(self, values: pd.Series, missing_count: int) -> None:
        if pd.api.types.is_datetime64_any_dtype(values.dtype):
            return
        if not is_text(_without_missing(values, missing_count)):
            raise SchemaError(
                f"column {self.name!r}: expected dates, as text in the format "
                f"{self.effective_date_format!r}, found dtype {values.dtype}"
            )
        parsed = parse_dates(values, self.effective_date_format)
        bad = int(parsed.isna().sum()) - missing_count
        if bad:
            raise SchemaError(
                f"column {self.name!r}: {bad} values are not dates in the format "
                f"{self.effective_date_format!r}"
            )


def _without_missing(values: pd.Series, missing_count: int) -> pd.Series:
    """``values`` without missing ones, copied only where that changes its type."""
    if missing_count and values.dtype == object:
        return values.dropna()
    return values


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
        extra = [str(n) for n in frame.columns if n not in expected]
        if extra:
            raise SchemaError(
                f"schema {self.name!r} v{self.version}: unexpected columns {extra}"
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
    kept = replace(column, deid="keep", phi=None)
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


def _canonical_number(value: float | None) -> float | int | None:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _anchored(pattern: str) -> str:
    return f"^(?:{pattern})$"


def is_text(values: pd.Series) -> bool:
    """Return whether every present value of ``values`` is text."""
    if isinstance(values.dtype, pd.StringDtype):
        return True
    if isinstance(values.dtype, pd.ArrowDtype):
        arrow_type = values.dtype.pyarrow_dtype
        return bool(
            pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
        )
    if values.dtype != object:
        return False
    return bool(
        values.empty or pd.api.types.infer_dtype(values, skipna=True) == "string"
    )


def text_array(values: pd.Series) -> pa.Array:
    """Return text values as one Arrow string array (no copy if Arrow-backed).

    Arrow-backed values in several chunks are joined into one array (a copy).
    """
    array = pa.array(values, from_pandas=True)
    if isinstance(array, pa.ChunkedArray):
        array = array.chunk(0) if array.num_chunks == 1 else array.combine_chunks()
    if pa.types.is_null(array.type):
        array = array.cast(pa.string())
    return array


def parse_dates(values: pd.Series, date_format: str) -> pd.Series:
    """Parse dates written in ``date_format``; what does not parse is ``NaT``.

    Each distinct text is parsed once, so a column of a million dates of a
    few thousand distinct days costs a few thousand parses.

    Parameters
    ----------
    values : pandas.Series
        Dates as text (missing values allowed), or already ``datetime64``.
    date_format : str
        A ``strptime`` format, e.g. ``"%Y-%m-%d"``.

    Returns
    -------
    pandas.Series
        ``datetime64[ns]`` values with the same index.

    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values
    codes, uniques = pd.factorize(values)
    parsed = pd.to_datetime(
        pd.Index(np.asarray(uniques, dtype=object)),
        format=date_format,
        errors="coerce",
    )
    days = np.asarray(parsed, dtype="datetime64[ns]")
    result = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[ns]")
    known = codes >= 0
    result[known] = days[codes[known]]
    return pd.Series(result, index=values.index, name=values.name)
