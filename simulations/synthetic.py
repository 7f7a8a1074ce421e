"""Synthetic rows for any learning task, and the raw-export schema they follow.

For research at scale (hundreds of virtual hospitals on one machine)
``hospfed-sim run --synthetic ROWS`` needs data of a given task without any
patient. :func:`synthetic_rows` draws every feature the task reads
(numeric: Gaussian; binary: Bernoulli; categorical: uniform over the task's
levels), encodes and standardises them as the task does, and draws the
label from one fixed random model of those inputs, the ground truth every
hospital shares: a logistic model (binary), a softmax model (multi-class)
or a linear model with Gaussian noise (continuous). A federated model can
therefore learn it, and beat a constant predictor.

:func:`synthetic_schema` writes the raw-export contract of those rows (the
task's columns only, no identifier), named so that it de-identifies to the
task's schema; numeric columns are marked reviewed (a measurement drawn
per row is unique per row, which ``prepare`` otherwise refuses as a likely
identifier).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from hospfed.common.schema import DatasetSchema, loads_schema
from hospfed.common.task import Feature, LearningTask

__all__ = ["synthetic_rows", "synthetic_schema"]

_REVIEWED = "synthetic measurement drawn per row (hospfed-sim), not an identifier"
_NOISE = 0.5  # sd of a continuous label's noise around its linear model


def synthetic_schema(task: LearningTask) -> DatasetSchema:
    """The raw-export schema of :func:`synthetic_rows`' output for ``task``.

    Named ``TASK_SCHEMA-raw``, so it de-identifies to the task's schema.
    """
    columns = [_feature_column(f) for f in task.features]
    columns.append(_label_column(task))
    document = {
        "format": "hospfed-schema",
        "format-version": 1,
        "name": f"{task.schema}-raw",
        "version": 1,
        "label": task.label.column,
        "columns": columns,
    }
    return loads_schema(json.dumps(document), source="synthetic schema")


def _feature_column(feature: Feature) -> dict[str, Any]:
    if feature.kind == "categorical":
        return _levels_column(feature.column, list(feature.levels))
    if feature.kind == "binary":
        return {"name": feature.column, "kind": "int", "minimum": 0, "maximum": 1}
    return {"name": feature.column, "kind": "float", "reviewed": _REVIEWED}


def _label_column(task: LearningTask) -> dict[str, Any]:
    label = task.label
    base = {"name": label.column, "role": "label"}
    if label.kind == "multiclass":
        return _levels_column(label.column, list(label.classes)) | base
    if label.kind == "continuous":
        return base | {"kind": "float", "reviewed": _REVIEWED}
    levels = sorted({*label.positive, *label.negative}, key=str)
    return _levels_column(label.column, levels) | base


def _levels_column(name: str, levels: list[Any]) -> dict[str, Any]:
    """A category column for numeric levels; text levels are a string column."""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in levels):
        return {"name": name, "kind": "category", "levels": levels}
    return {"name": name, "kind": "string"}


def synthetic_rows(task: LearningTask, rows: int, *, seed: int) -> pd.DataFrame:
    """Draw ``rows`` rows of ``task``'s columns with a learnable label.

    Parameters
    ----------
    task : LearningTask
        Which columns, of which kinds, and the label's kind.
    rows : int
        How many rows.
    seed : int
        Seed of the features, the ground-truth model and the labels.

    Returns
    -------
    pandas.DataFrame
        One column per feature and the label, in the task's coding.

    """
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f.column: _draw(f, rows, rng) for f in task.features})
    inputs = np.concatenate([_encode(frame[f.column], f) for f in task.features], 1)
    inputs = (inputs - inputs.mean(0)) / np.where(inputs.std(0) > 0, inputs.std(0), 1)
    frame[task.label.column] = _labels(task, inputs, rng)
    return frame


def _draw(feature: Feature, rows: int, rng: np.random.Generator) -> Any:
    if feature.kind == "categorical":
        return pd.Series(rng.choice(np.asarray(feature.levels, dtype=object), rows))
    if feature.kind == "binary":
        return rng.integers(0, 2, rows)
    return np.round(rng.normal(50.0, 10.0, rows), 2)


def _encode(values: pd.Series, feature: Feature) -> np.ndarray:
    if feature.kind != "categorical":
        column: np.ndarray = values.to_numpy(dtype=np.float64)
        return column[:, None]
    levels = list(feature.levels)[1 if feature.drop_first else 0 :]
    return np.stack([(values == level).to_numpy() for level in levels], 1).astype(
        np.float64
    )


def _labels(task: LearningTask, inputs: np.ndarray, rng: np.random.Generator) -> Any:
    label = task.label
    width = inputs.shape[1]
    if label.kind == "multiclass":
        classes = np.asarray(label.classes, dtype=object)
        logits = inputs @ rng.normal(0.0, 1.5, (width, len(classes)))
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        picks = (rng.random((len(p), 1)) > np.cumsum(p, 1)).sum(1)
        return pd.Series(classes[np.minimum(picks, len(classes) - 1)])
    score = inputs @ rng.normal(0.0, 1.5 / np.sqrt(width), width)
    if label.kind == "continuous":
        return np.round(score + rng.normal(0.0, _NOISE, len(score)), 3)
    ones = rng.random(len(score)) < 1.0 / (1.0 + np.exp(-2.0 * score))
    positive, negative = label.positive[0], label.negative[0]
    return pd.Series(np.where(ones, positive, negative))
