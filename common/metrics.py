"""Evaluation metrics of a binary classifier, shared by every backend.

Accuracy at threshold 0.5, ROC AUC (scikit-learn) and mean binary
cross-entropy, computed from predicted probabilities with NumPy so that the
Keras and PyTorch backends report identical numbers for identical outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_EPS = 1e-7


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    """Metrics of one model on one labelled set."""

    loss: float
    accuracy: float
    auc: float
    num_examples: int


def evaluate_probabilities(y_true: np.ndarray, proba: np.ndarray) -> Evaluation:
    """Score predicted probabilities against binary labels.

    Parameters
    ----------
    y_true : numpy.ndarray
        Labels in {0, 1}.
    proba : numpy.ndarray
        Predicted probability of label 1, same length.

    Returns
    -------
    Evaluation
        ``auc`` is NaN when ``y_true`` holds a single class.

    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.clip(np.asarray(proba, dtype=np.float64).ravel(), _EPS, 1 - _EPS)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and predictions {p.shape} differ")
    loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    accuracy = float(np.mean((p >= 0.5) == (y == 1)))
    auc = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else math.nan
    return Evaluation(loss=loss, accuracy=accuracy, auc=auc, num_examples=len(y))
