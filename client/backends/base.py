"""The training-backend interface and the per-process backend registry.

A backend builds the network of a :class:`~hospfed.common.model.ModelSpec`
in one framework and offers four operations: get and set weights in the
canonical layout, train for one :class:`~hospfed.common.training.TrainPlan`,
and predict probabilities. Backends are created once per process and kept
warm (``get_backend``), so a long-running hospital client never rebuilds or
re-traces its model per message. Frameworks are imported only when their
backend is first asked for.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from hospfed.client.privacy import DpStep
from hospfed.common.errors import ConfigError
from hospfed.common.metrics import Evaluation, evaluate_predictions
from hospfed.common.model import ModelSpec, Weights
from hospfed.common.training import TrainPlan

BACKENDS: tuple[str, ...] = ("keras", "torch")
"""Names accepted by :func:`get_backend`."""


class TrainingBackend(Protocol):
    """What a framework must offer to train a hospfed model."""

    spec: ModelSpec

    def get_weights(self) -> Weights:
        """Return the weights in the canonical layout."""
        ...

    def set_weights(self, weights: Weights) -> None:
        """Load weights given in the canonical layout."""
        ...

    def train(
        self,
        x: np.ndarray,
        y: np.ndarray,
        plan: TrainPlan,
        privacy: DpStep | None = None,
    ) -> float:
        """Run one round of local training; return the mean training loss.

        With ``privacy``, every step is a DP-SGD step (Poisson sampling,
        per-example clipping, Gaussian noise) as :class:`DpStep` describes.
        """
        ...

    def clipped_gradient_sum(
        self, x: np.ndarray, y: np.ndarray, *, clip_norm: float
    ) -> Weights:
        """Return the sum of per-example gradients clipped to ``clip_norm``."""
        ...

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Return each row's prediction for the label's kind.

        The probability of 1 (binary), class probabilities of shape
        ``(n, classes)`` (multi-class), or the value (continuous).
        """
        ...


_WARM: dict[tuple[str, ModelSpec], TrainingBackend] = {}


def get_backend(name: str, spec: ModelSpec) -> TrainingBackend:
    """Return this process's backend ``name`` for ``spec``, building it once.

    Parameters
    ----------
    name : str
        One of :data:`BACKENDS`.
    spec : ModelSpec
        The model to build.

    Raises
    ------
    ConfigError
        If ``name`` is not a known backend.

    """
    key = (name, spec)
    if key not in _WARM:
        _WARM[key] = _build(name, spec)
    return _WARM[key]


def _build(name: str, spec: ModelSpec) -> TrainingBackend:
    if name == "keras":
        from hospfed.client.backends.keras_backend import KerasBackend

        return KerasBackend(spec)
    if name == "torch":
        from hospfed.client.backends.torch_backend import TorchBackend

        return TorchBackend(spec)
    raise ConfigError(f"unknown backend {name!r}; allowed: {', '.join(BACKENDS)}")


def evaluate(backend: TrainingBackend, x: np.ndarray, y: np.ndarray) -> Evaluation:
    """Score ``backend``'s current weights on a labelled set."""
    return evaluate_predictions(backend.spec.output, y, backend.predict(x))
