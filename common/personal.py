"""What a run is scored on, and how each hospital personalises: both sides' view.

The coordinator decides, per run, which of each hospital's held-out sets the
evaluation rounds score (:data:`EVALUATE_ON`) and whether hospitals adapt
the final global model to their own data (:class:`PersonalPlan`); it sends
both in the evaluation instructions (:func:`evaluation_instructions`), and
each hospital reads them back (:func:`decode_evaluation`).

- ``evaluate-on = "test"`` (the default) scores every round on the test set;
  ``"validation"`` on the validation set the task holds out of the training
  rows (the test set is then never read); ``"validation-then-test"`` on
  validation every round and on test once, in the final round (what
  ``hospfed-sim tune`` runs for its chosen settings).
- Personalisation happens in the final round's evaluation, at each hospital
  and only there: the hospital scores the global model, adapts a copy of it
  on its training rows (:mod:`hospfed.client.personalise`; DP-SGD under the
  hospital's own budget when it trains privately), scores that copy on the
  same set and reports both. The personalised weights never leave it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from hospfed.common.errors import ConfigError

__all__ = [
    "EVALUATE_ON",
    "PERSONALISE_METHODS",
    "PERSONAL_PREFIX",
    "EvaluateOn",
    "PersonalPlan",
    "decode_evaluation",
    "evaluation_instructions",
    "split_of_round",
]

EvaluateOn = Literal["test", "validation", "validation-then-test"]
EVALUATE_ON: tuple[str, ...] = get_args(EvaluateOn)
PersonaliseMethod = Literal["finetune", "ditto"]
PERSONALISE_METHODS: tuple[str, ...] = get_args(PersonaliseMethod)
PERSONAL_PREFIX = "personal-"
"""Prefix of a personalised model's metrics (``personal-accuracy``, ...)."""

_SPLIT = "evaluate-split"
_METHOD = "personalise"
_LR = "personal-learning-rate"
_STEPS = "personal-steps"
_LAMBDA = "ditto-lambda"


@dataclass(frozen=True, kw_only=True)
class PersonalPlan:
    """How each hospital adapts the final global model to its own data.

    Parameters
    ----------
    method : {"finetune", "ditto"}
        ``finetune``: train the last layer only, on the representation the
        global model's frozen body computes (FedPer/FedRep's private head,
        fitted after training). ``ditto``: train every layer with Ditto's
        proximal pull ``ditto_lambda / 2 * ||v - w_global||^2`` towards the
        global model.
    learning_rate : float
        Step size of the personal training (> 0).
    local_steps : int
        Its mini-batch steps (>= 1).
    ditto_lambda : float
        Ditto's proximal coefficient (>= 0; ``ditto`` only).

    """

    method: PersonaliseMethod
    learning_rate: float
    local_steps: int
    ditto_lambda: float = 0.1

    def __post_init__(self) -> None:
        if self.method not in PERSONALISE_METHODS:
            raise ConfigError(
                f"personalise: unknown method {self.method!r}; allowed: "
                f"{', '.join(PERSONALISE_METHODS)}"
            )
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ConfigError(f"{_LR}: must be a number > 0, got {self.learning_rate}")
        if self.local_steps < 1:
            raise ConfigError(f"{_STEPS}: must be >= 1, got {self.local_steps}")
        if not (math.isfinite(self.ditto_lambda) and self.ditto_lambda >= 0):
            raise ConfigError(
                f"{_LAMBDA}: must be a number >= 0, got {self.ditto_lambda}"
            )

    def describe(self) -> str:
        """One line: the method and its settings."""
        extra = f", lambda {self.ditto_lambda:g}" if self.method == "ditto" else ""
        return (
            f"{self.method} ({self.local_steps} steps, learning rate "
            f"{self.learning_rate:g}{extra})"
        )


def split_of_round(evaluate_on: str, server_round: int, num_rounds: int) -> str:
    """The held-out set round ``server_round`` is scored on.

    Parameters
    ----------
    evaluate_on : str
        One of :data:`EVALUATE_ON`.
    server_round, num_rounds : int
        The round and the run's last round.

    Returns
    -------
    str
        ``"test"`` or ``"validation"``.

    """
    if evaluate_on == "validation-then-test":
        return "test" if server_round >= num_rounds else "validation"
    return evaluate_on


def evaluation_instructions(
    split: str, personal: PersonalPlan | None
) -> dict[str, bool | int | float | str]:
    """The evaluation round's extra config: its set and, if any, personalisation."""
    config: dict[str, bool | int | float | str] = {_SPLIT: split}
    if personal is not None:
        config |= {
            _METHOD: personal.method,
            _LR: personal.learning_rate,
            _STEPS: personal.local_steps,
            _LAMBDA: personal.ditto_lambda,
        }
    return config


def decode_evaluation(
    config: Mapping[str, object],
) -> tuple[str, PersonalPlan | None]:
    """Read an evaluation round's set and personalisation.

    Instructions without a set (a coordinator of an earlier version) score
    the test set, as before.

    Raises
    ------
    ConfigError
        For an unknown set or a malformed personalisation.

    """
    split = str(config.get(_SPLIT, "test"))
    if split not in ("test", "validation"):
        raise ConfigError(f"instructions ask to score an unknown set {split!r}")
    if _METHOD not in config:
        return split, None
    try:
        personal = PersonalPlan(
            method=str(config[_METHOD]),  # type: ignore[arg-type]
            learning_rate=float(config[_LR]),  # type: ignore[arg-type]
            local_steps=int(config[_STEPS]),  # type: ignore[call-overload]
            ditto_lambda=float(config[_LAMBDA]),  # type: ignore[arg-type]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"instructions carry a bad personalisation: {exc}") from exc
    return split, personal
