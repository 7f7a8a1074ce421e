"""The run config's evaluation keys: which set rounds score, and personalisation.

``evaluate-on`` (``test``, ``validation`` or ``validation-then-test``; see
:mod:`hospfed.common.personal`) and ``personalise`` (``none``, ``finetune``
or ``ditto``) with ``personal-learning-rate`` (default: the run's client
learning rate), ``personal-steps`` (default: its local steps) and
``ditto-lambda`` (default 0.1). Read once, checked against the task: a run
scoring a validation set needs a task that holds one out.
"""

from __future__ import annotations

from hospfed.common.config import ConfigMapping, get_choice, get_float, get_int
from hospfed.common.errors import ConfigError
from hospfed.common.personal import (
    EVALUATE_ON,
    PERSONALISE_METHODS,
    PersonalPlan,
)
from hospfed.common.task import LearningTask
from hospfed.common.training import TrainPlan

__all__ = ["EVALUATION_KEYS", "read_evaluation"]

EVALUATION_KEYS: tuple[str, ...] = (
    "evaluate-on",
    "personalise",
    "personal-learning-rate",
    "personal-steps",
    "ditto-lambda",
)
DEFAULT_DITTO_LAMBDA = 0.1


def read_evaluation(
    config: ConfigMapping, task: LearningTask, train: TrainPlan
) -> tuple[str, PersonalPlan | None]:
    """Read ``evaluate-on`` and the personalisation keys.

    Raises
    ------
    ConfigError
        For an unknown value, a validation set the task does not hold out,
        or personal settings without ``personalise`` (a typo must not be
        ignored).

    """
    evaluate_on = get_choice(config, "evaluate-on", "test", EVALUATE_ON)
    if evaluate_on != "test" and not task.split.has_validation:
        raise ConfigError(
            f"evaluate-on {evaluate_on!r} needs a validation set, and task "
            f"{task.name!r} holds none out; give the task [split] "
            "validation-fraction (hospfed-sim: --validation-fraction)"
        )
    method = get_choice(config, "personalise", "none", ("none", *PERSONALISE_METHODS))
    if method == "none":
        given = [k for k in EVALUATION_KEYS[2:] if k in config]
        if given:
            raise ConfigError(
                f"run-config key {given[0]!r} has no effect without personalise = "
                f"{' or '.join(map(repr, PERSONALISE_METHODS))}"
            )
        return evaluate_on, None
    if method != "ditto" and "ditto-lambda" in config:
        raise ConfigError(
            "run-config key 'ditto-lambda' applies to personalise = 'ditto'"
        )
    personal = PersonalPlan(
        method=method,  # type: ignore[arg-type]
        learning_rate=get_float(
            config, "personal-learning-rate", train.learning_rate, positive=True
        ),
        local_steps=get_int(config, "personal-steps", train.local_steps, minimum=1),
        ditto_lambda=get_float(config, "ditto-lambda", DEFAULT_DITTO_LAMBDA, minimum=0),
    )
    return evaluate_on, personal
