"""The trained model at the hospital: score it on the hospital's own data, or apply it.

:func:`load_run_model` reads a finished run's results directory
(``metrics.json`` for the model spec, ``model.npz`` for the weights; never
unpickled). :func:`evaluate_at_hospital` scores the model on the hospital's
own test split, built by the learning task exactly as training built it;
:func:`predict_rows` applies it to every complete row of a prepared dataset
(scaled with the hospital's training statistics) and keys each prediction
by the row's pseudonym, never an identifier. The forward pass is NumPy (the
model is a small dense network), so neither TensorFlow nor torch is loaded;
a test checks it against the Keras backend.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from hospfed.client.data import PreparedDataset
from hospfed.client.features import encode_rows
from hospfed.common.errors import ConfigError, DataError
from hospfed.common.files import atomic_write
from hospfed.common.metrics import Evaluation, evaluate_predictions
from hospfed.common.model import ModelSpec, Weights
from hospfed.common.scaling import Scaling
from hospfed.common.task import LearningTask, loads_task

__all__ = [
    "RunModel",
    "check_model_fits",
    "evaluate_at_hospital",
    "forward",
    "load_run_model",
    "predict_rows",
    "run_task",
    "write_predictions",
]


@dataclass(frozen=True)
class RunModel:
    """A run's final model: its spec, its weights and the run's status."""

    spec: ModelSpec
    weights: Weights
    status: str
    scaling: Scaling | None = None
    """The federation's input statistics (a task standardising by federation)."""
    task_fingerprint: str | None = None
    """The fingerprint of the task the run trained (None: not recorded)."""
    task: LearningTask | None = None
    """The task the run trained, as it recorded it (None: not recorded)."""


def load_run_model(run_dir: Path) -> RunModel:
    """Read the model a run wrote (``metrics.json`` and ``model.npz``).

    Raises
    ------
    DataError
        If the directory is not a run's results, or the weights do not fit
        the spec it records.

    """
    try:
        document = json.loads((run_dir / "metrics.json").read_text())
        raw = document["run"]["model"]
        spec = ModelSpec(
            input_dim=int(raw["input_dim"]),
            hidden=tuple(int(w) for w in raw["hidden"]),
            activation=raw["activation"],
            output=raw.get("output", "binary"),
            num_classes=int(raw.get("num_classes", 2)),
        )
        with np.load(run_dir / "model.npz", allow_pickle=False) as archive:
            weights = [archive[f"w{i}"] for i in range(len(archive.files))]
        recorded = document["run"].get("scaling")
        scaling = None if recorded is None else Scaling.from_json(json.dumps(recorded))
    except (OSError, KeyError, TypeError, ValueError, ConfigError) as exc:
        raise DataError(
            f"{run_dir} is not a run's results directory with a model "
            f"(metrics.json and model.npz): {type(exc).__name__}"
        ) from None
    spec.check_weights(weights)
    fingerprint = document["run"].get("task_fingerprint")
    return RunModel(
        spec,
        weights,
        str(document.get("status", "unknown")),
        scaling,
        None if fingerprint is None else str(fingerprint),
        _recorded_task(run_dir, document["run"].get("task_document"), fingerprint),
    )


def _recorded_task(
    run_dir: Path, document: object, fingerprint: object
) -> LearningTask | None:
    """The task a run recorded, checked against the fingerprint it recorded."""
    if document is None:
        return None
    try:
        task = loads_task(json.dumps(document), fmt="json", source=f"{run_dir}'s task")
    except ConfigError as exc:
        raise DataError(f"{run_dir}/metrics.json records a bad task: {exc}") from None
    if fingerprint is not None and task.fingerprint() != fingerprint:
        raise DataError(
            f"{run_dir}/metrics.json records a task whose fingerprint is not the "
            "run's; the results directory was altered"
        )
    return task


def run_task(model: RunModel, given: LearningTask | None) -> LearningTask:
    """The task to read a hospital's data with: ``given``, else the run's own.

    Runs recorded before the task was kept in ``metrics.json`` fall back to
    Fed-Heart-Disease's (checked against the run's fingerprint as any task).
    """
    if given is not None:
        return given
    if model.task is not None:
        return model.task
    from hospfed.common.datasets import FED_HEART_TASK

    return FED_HEART_TASK


def forward(spec: ModelSpec, weights: Weights, x: np.ndarray) -> np.ndarray:
    """The model's predictions (as the backends' ``predict``), in NumPy."""
    from hospfed.client.personalise import hidden_activations

    activations = hidden_activations(spec, weights, x)
    outputs = activations @ weights[-2].astype(np.float64) + weights[-1]
    if spec.output == "multiclass":
        shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))
    if spec.output == "continuous":
        return np.asarray(outputs[:, 0])
    return np.asarray(1.0 / (1.0 + np.exp(-outputs[:, 0])))


def check_model_fits(model: RunModel, task: LearningTask) -> None:
    """Refuse a task other than the run's, or one the model does not fit."""
    if model.task_fingerprint is not None and model.task_fingerprint != (
        task.fingerprint()
    ):
        raise DataError(
            f"task {task.name!r} is not the task the run trained (its fingerprint "
            f"differs from the run's {model.task_fingerprint[:16]}...): inputs "
            "built another way would give wrong predictions; pass the run's own "
            "task file with --task"
        )
    if model.spec.input_dim != len(task.input_names):
        raise DataError(
            f"the model takes {model.spec.input_dim} inputs but task {task.name!r} "
            f"builds {len(task.input_names)}: use the task the run trained with"
        )
    if model.spec.output != task.label.kind:
        raise DataError(
            f"the model predicts a {model.spec.output} label but task "
            f"{task.name!r} has a {task.label.kind} label"
        )


def evaluate_at_hospital(
    model: RunModel, prepared: PreparedDataset, task: LearningTask, hospital: str
) -> Evaluation:
    """Score the model on this hospital's own test split."""
    check_model_fits(model, task)
    rows = encode_rows(prepared.frame, task, hospital, model.scaling)
    data = rows.hospital_data(hospital)
    predicted = forward(model.spec, model.weights, data.x_test)
    return evaluate_predictions(model.spec.output, data.y_test, predicted)


def predict_rows(
    model: RunModel, prepared: PreparedDataset, task: LearningTask, hospital: str
) -> tuple[pd.DataFrame, int]:
    """Predict every complete row; return the table and how many rows were left out.

    The table holds the row's pseudonym columns (the schema's ``pseudonym``
    role) and the prediction: ``probability`` (binary), ``class`` and one
    ``p_<class>`` per class (multi-class), or ``value`` (continuous).
    """
    check_model_fits(model, task)
    rows = encode_rows(prepared.frame, task, hospital, model.scaling)
    predicted = forward(model.spec, model.weights, rows.scaled())
    keys = [c.name for c in prepared.schema.columns if c.role == "pseudonym"]
    table = prepared.frame.loc[rows.index, keys].reset_index(drop=True)
    for name, values in _prediction_columns(model.spec, task, predicted).items():
        table[name] = values
    return table, len(prepared.frame) - len(rows.index)


def _prediction_columns(
    spec: ModelSpec, task: LearningTask, predicted: np.ndarray
) -> dict[str, npt.ArrayLike]:
    if spec.output == "continuous":
        return {"value": predicted}
    if spec.output == "binary":
        return {"probability": predicted}
    classes = list(task.label.classes)
    columns: dict[str, npt.ArrayLike] = {
        "class": [classes[i] for i in np.argmax(predicted, axis=1)]
    }
    for position, level in enumerate(classes):
        columns[f"p_{level}"] = predicted[:, position]
    return columns


def write_predictions(table: pd.DataFrame, out: Path) -> None:
    """Write the predictions as CSV, atomically (mode 0600: they are about patients)."""
    atomic_write(out, table.to_csv(index=False).encode("utf-8"), mode=0o600)
