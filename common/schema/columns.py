"""Columns of the dataset contract: their kinds, roles and Safe Harbor actions.

A :class:`Column` names one column, its type, its allowed values, its role
(feature, label, identifier, ...) and, for a raw export, what
de-identification does to it (its ``deid`` action: keep, drop, pseudonymise,
reduce a date to its year, ...); :meth:`Column.validate` checks a pandas
column against it. The tables here say which actions Safe Harbor allows for
which role and category.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hospfed.common.errors import ConfigError, SchemaError
from hospfed.common.schema.values import (
    is_text,
    parse_dates,
    text_array,
    without_missing,
)

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
    "free_text": "drop",
    "partition": "keep",
    "pseudonym": "keep",
}
"""What de-identification does to a column of each role unless told otherwise.

Free text is dropped: it is not a model input, and dropping it is the only
de-identification of it that cannot miss anything. Keeping it needs an
explicit ``deid = "scrub"``.
"""

CANONICAL_IMPLICIT_ACTION: Mapping[ColumnRole, DeidAction] = {
    **DEFAULT_ACTION,
    "free_text": "scrub",
}
"""The action the canonical form (and so the fingerprint) leaves unsaid, per role.

Frozen at what schema format version 1 left unsaid, so that the fingerprint
of every existing contract stays where it was: a free-text column that is
scrubbed is written without ``deid`` (as version 1 files wrote it), one that
is dropped with ``deid = "drop"``, whatever the defaults of this hospfed.
"""

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
    reviewed : str or None
        Why a kept column that looks like an identifier at prepare time (one
        value per row; values shaped like SSNs, phone numbers, ZIP codes,
        ``yyyymmdd`` dates or ages over 89) is not one. Without it such a
        column is refused; with it the column is kept and the reason is
        repeated in the prepare report. It also lets the column's person
        and place names pass the residual check (a column of the
        consortium's site names); digit shapes, contacts, dates and ages in
        it are still refused. Never put a patient value in it.

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
    reviewed: str | None = None

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
        if self.reviewed is not None:
            self._check_reviewed(self.reviewed)

    def _check_reviewed(self, reason: str) -> None:
        if not reason.strip():
            raise ConfigError(
                f"column {self.name!r}: reviewed needs a reason (why this column "
                "is not an identifier), not an empty text"
            )
        if self.action != "keep":
            raise ConfigError(
                f"column {self.name!r}: reviewed is for kept columns; this one is "
                f"de-identified with deid {self.action!r}"
            )

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
        default are left out, and a ``date`` column always states its format.
        The action is written unless it is the role's
        :data:`CANONICAL_IMPLICIT_ACTION` (so ``deid=None`` and the same action
        given explicitly have the same form, and a free-text column's form
        is what format version 1 gave it).
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
        if with_action and self.action != CANONICAL_IMPLICIT_ACTION[self.role]:
            out["deid"] = self.action
        if self.phi is not None:
            out["phi"] = self.phi
        if self.kind == "date":
            out["date_format"] = self.effective_date_format
        if self.pattern is not None:
            out["pattern"] = self.pattern
        if self.reviewed is not None:
            out["reviewed"] = self.reviewed
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
        if not is_text(without_missing(values, missing_count)):
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
        if not is_text(without_missing(values, missing_count)):
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


def _anchored(pattern: str) -> str:
    return f"^(?:{pattern})$"


def _canonical_number(value: float | None) -> float | int | None:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
