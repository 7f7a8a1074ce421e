"""Evaluation metrics for each kind of label, shared by every backend.

Computed from a backend's predictions with NumPy (and scikit-learn's ROC
AUC and F1), so the Keras and PyTorch backends report identical numbers for
identical outputs:

- binary: mean binary cross-entropy, accuracy at threshold 0.5, ROC AUC;
- multi-class: mean cross-entropy, accuracy of the most probable class,
  macro-averaged F1;
- continuous: mean squared error (the loss), RMSE and MAE.

A metric that does not apply to a kind is NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hospfed.common.model import OutputKind

_EPS = 1e-7
_NAN = math.nan


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    """Metrics of one model on one labelled set (NaN where they do not apply)."""

    loss: float
    accuracy: float
    auc: float
    num_examples: int
    macro_f1: float = _NAN
    rmse: float = _NAN
    mae: float = _NAN


def evaluate_predictions(
    kind: OutputKind, y_true: np.ndarray, predicted: np.ndarray
) -> Evaluation:
    """Score a backend's predictions against the labels.

    Parameters
    ----------
    kind : {"binary", "multiclass", "continuous"}
        The label's kind.
    y_true : numpy.ndarray
        Labels: 0/1, class indices, or values.
    predicted : numpy.ndarray
        What the backend predicts: the probability of 1 (binary), class
        probabilities of shape ``(n, classes)`` (multi-class), or values.

    Returns
    -------
    Evaluation
        ``auc`` is NaN when a binary ``y_true`` holds a single class.

    """
    if kind == "multiclass":
        return _multiclass(y_true, predicted)
    if kind == "continuous":
        return _continuous(y_true, predicted)
    return evaluate_probabilities(y_true, predicted)


def evaluate_probabilities(y_true: np.ndarray, proba: np.ndarray) -> Evaluation:
    """Score predicted probabilities against binary labels."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.clip(np.asarray(proba, dtype=np.float64).ravel(), _EPS, 1 - _EPS)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and predictions {p.shape} differ")
    loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    accuracy = float(np.mean((p >= 0.5) == (y == 1)))
    auc = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else _NAN
    return Evaluation(loss=loss, accuracy=accuracy, auc=auc, num_examples=len(y))


def _multiclass(y_true: np.ndarray, proba: np.ndarray) -> Evaluation:
    from sklearn.metrics import f1_score

    y = np.asarray(y_true).ravel().astype(np.int64)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != y.size:
        raise ValueError(f"labels {y.shape} and class probabilities {p.shape} differ")
    chosen = np.clip(p[np.arange(y.size), y], _EPS, 1.0)
    guess = np.argmax(p, axis=1)
    classes = np.arange(p.shape[1])
    return Evaluation(
        loss=float(-np.mean(np.log(chosen))),
        accuracy=float(np.mean(guess == y)),
        auc=_NAN,
        num_examples=int(y.size),
        macro_f1=float(
            f1_score(y, guess, labels=classes, average="macro", zero_division=0)
        ),
    )


def _continuous(y_true: np.ndarray, values: np.ndarray) -> Evaluation:
    y = np.asarray(y_true, dtype=np.float64).ravel()
    v = np.asarray(values, dtype=np.float64).ravel()
    if y.shape != v.shape:
        raise ValueError(f"labels {y.shape} and predictions {v.shape} differ")
    error = v - y
    mse = float(np.mean(error**2))
    return Evaluation(
        loss=mse,
        accuracy=_NAN,
        auc=_NAN,
        num_examples=int(y.size),
        rmse=math.sqrt(mse),
        mae=float(np.mean(np.abs(error))),
    )
