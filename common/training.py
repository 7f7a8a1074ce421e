"""What one round of local training does, independent of the framework.

A :class:`HospitalData` is what local training reads: one hospital's
standardised training and test arrays. A :class:`TrainPlan` is the frozen
description of local training (optimizer, learning rate, steps, batch size,
proximal term, seed). ``batch_indices``
draws the mini-batches with NumPy, so every backend visits the same examples
in the same order for the same seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from hospfed.common.errors import ConfigError

Optimizer = Literal["sgd", "adam"]
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")


@dataclass(frozen=True, kw_only=True)
class TrainPlan:
    """Local training for one round at one hospital.

    Parameters
    ----------
    learning_rate : float
        Step size of the local optimizer.
    local_steps : int
        Number of mini-batch steps.
    batch_size : int
        Examples per step.
    optimizer : {"sgd", "adam"}
        Local optimizer; its state starts fresh every round.
    proximal_mu : float
        FedProx proximal coefficient; 0 disables the term.
    seed : int
        Seed of the mini-batch order.
    reset_optimizer : bool
        Start the optimizer's state afresh (every federated round does);
        False continues it (epochs of one centralised run).

    """

    learning_rate: float
    local_steps: int
    batch_size: int
    optimizer: Optimizer = "sgd"
    proximal_mu: float = 0.0
    seed: int = 0
    reset_optimizer: bool = True

    def __post_init__(self) -> None:
        if not self.learning_rate > 0:
            raise ConfigError(f"learning rate must be > 0, got {self.learning_rate}")
        if self.local_steps < 1:
            raise ConfigError(f"local steps must be >= 1, got {self.local_steps}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"unknown optimizer {self.optimizer!r}; "
                f"allowed: {', '.join(OPTIMIZERS)}"
            )
        if self.proximal_mu < 0:
            raise ConfigError(f"proximal mu must be >= 0, got {self.proximal_mu}")


def batch_indices(num_examples: int, plan: TrainPlan) -> np.ndarray:
    """Draw the mini-batches of one round.

    Examples are visited in epochs, each a fresh permutation, the epochs
    concatenated and cut into ``local_steps`` batches of ``batch_size`` (a
    data loader with ``shuffle=True`` cycled for a fixed number of steps).

    Parameters
    ----------
    num_examples : int
        Size of the local training set.
    plan : TrainPlan
        Supplies ``local_steps``, ``batch_size`` and ``seed``.

    Returns
    -------
    numpy.ndarray
        int32 array of shape ``(local_steps, batch_size)``.

    """
    if num_examples < 1:
        raise ConfigError("cannot train on an empty training set")
    rng = np.random.default_rng(plan.seed)
    needed = plan.local_steps * plan.batch_size
    epochs = -(-needed // num_examples)
    order = np.concatenate([rng.permutation(num_examples) for _ in range(epochs)])
    return order[:needed].reshape(plan.local_steps, plan.batch_size).astype(np.int32)


@dataclass(frozen=True)
class HospitalData:
    """One hospital's model inputs: training and test sets.

    Attributes
    ----------
    hospital : str
        The hospital's name.
    x_train, x_test : numpy.ndarray
        float32 feature matrices, standardised with training statistics.
    y_train, y_test : numpy.ndarray
        float32 labels: 0/1, class indices, or values (the task's label).
    x_val, y_val : numpy.ndarray or None
        The validation set held out of the training rows (a task with a
        validation split); None otherwise.

    """

    hospital: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    def scored_on(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """The inputs and labels of ``split`` (``"test"`` or ``"validation"``).

        Raises
        ------
        ConfigError
            For a validation set the task does not hold out, or another name.

        """
        if split == "test":
            return self.x_test, self.y_test
        if split != "validation":
            raise ConfigError(
                f"no {split!r} set; a model is scored on test or validation"
            )
        if self.x_val is None or self.y_val is None:
            raise ConfigError(
                f"{self.hospital}: the run's task holds out no validation set; "
                "give it [split] validation-fraction"
            )
        return self.x_val, self.y_val

    @property
    def num_features(self) -> int:
        """Number of model inputs."""
        return int(self.x_train.shape[1])

    def fingerprint(self) -> str:
        """SHA-256 of the training set: what a privacy ledger accounts for."""
        digest = hashlib.sha256()
        for array in (self.x_train, self.y_train):
            digest.update(str(array.shape).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()


def pool(parts: Sequence[HospitalData]) -> HospitalData:
    """Concatenate hospitals' prepared sets (a pooled reference's data)."""
    validation = all(p.x_val is not None for p in parts)
    return HospitalData(
        hospital="pooled",
        x_train=np.concatenate([p.x_train for p in parts]),
        y_train=np.concatenate([p.y_train for p in parts]),
        x_test=np.concatenate([p.x_test for p in parts]),
        y_test=np.concatenate([p.y_test for p in parts]),
        x_val=np.concatenate([p.x_val for p in parts]) if validation else None,  # type: ignore[misc]
        y_val=np.concatenate([p.y_val for p in parts]) if validation else None,  # type: ignore[misc]
    )
