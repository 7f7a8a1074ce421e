"""The dataset schema contract every hospital's data must meet.

A :class:`DatasetSchema` names each column, its type, its allowed values and
its role (feature, label, identifier, ...). ``validate`` checks a pandas frame
against it and raises :class:`~hospfed.common.errors.SchemaError` naming the
first column that differs and what was expected. ``fingerprint`` gives a
stable hash so that hospitals and the coordinator can tell they agree.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd

from hospfed.common.errors import SchemaError

ColumnKind = Literal["float", "int", "category"]
ColumnRole = Literal[
    "feature",
    "label",
    "identifier",
    "quasi_identifier",
    "date",
    "free_text",
    "partition",
]


@dataclass(frozen=True)
class Column:
    """One column of the contract.

    Parameters
    ----------
    name : str
        Column name, exactly as in the data.
    kind : {"float", "int", "category"}
        ``category`` columns hold one of ``levels``; the others are numbers.
    role : str
        What the column is for (``feature``, ``label``, ``identifier``, ...).
    minimum, maximum : float or None
        Inclusive bounds for numeric columns.
    levels : tuple of float or None
        Allowed values of a ``category`` column (numerically coded).
    nullable : bool
        Whether missing values are allowed.

    """

    name: str
    kind: ColumnKind
    role: ColumnRole = "feature"
    minimum: float | None = None
    maximum: float | None = None
    levels: tuple[float, ...] | None = None
    nullable: bool = False

    def check(self, values: pd.Series) -> None:
        """Raise :class:`SchemaError` if ``values`` break this column's rules."""
        missing = values.isna()
        if missing.any() and not self.nullable:
            raise SchemaError(
                f"column {self.name!r}: {int(missing.sum())} missing values, "
                "but the schema does not allow missing values"
            )
        present = values[~missing]
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

    """

    name: str
    version: int
    columns: tuple[Column, ...]
    label: str

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"schema {self.name!r}: duplicate column names")
        if self.label not in names:
            raise ValueError(f"schema {self.name!r}: label {self.label!r} not a column")

    @property
    def column_names(self) -> tuple[str, ...]:
        """Names of all columns, in order."""
        return tuple(c.name for c in self.columns)

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

    def fingerprint(self) -> str:
        """Return a stable SHA-256 hex digest of the contract."""
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()
