"""Keys of the messages between coordinator and hospitals, in one place.

The coordinator sends a :class:`~hospfed.common.training.TrainPlan` and the
:class:`~hospfed.common.model.ModelSpec` as a flat config of these keys; a
hospital answers with metrics from :data:`METRIC_WHITELIST` only, so nothing
else it computes (and no patient value) can leave it through metrics.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict

from hospfed.common.errors import ConfigError, SchemaError
from hospfed.common.model import ModelSpec
from hospfed.common.personal import PERSONAL_PREFIX
from hospfed.common.scaling import Scaling
from hospfed.common.schema import DatasetSchema, dumps_schema, loads_schema
from hospfed.common.task import LearningTask, dumps_task, loads_task
from hospfed.common.training import TrainPlan

Scalar = bool | int | float | str | bytes


class Key:
    """Config and metric keys (kebab-case, as Flower's run config)."""

    SERVER_ROUND = "server-round"
    LEARNING_RATE = "learning-rate"
    LOCAL_STEPS = "local-steps"
    BATCH_SIZE = "batch-size"
    OPTIMIZER = "optimizer"
    PROXIMAL_MU = "proximal-mu"
    SEED = "seed"
    MODEL_SPEC = "model-spec"
    SCHEMA = "schema"
    TASK = "task"
    TASK_FINGERPRINT = "task-fingerprint"
    SCALING = "scaling"
    """The federation's input statistics (a task standardising by federation)."""
    INPUT_SUMS = "input-sums"
    """A hospital's sums over its training inputs (answer to a sums query)."""
    CENTRAL_DP = "central-dp"
    """``fixed`` or ``adaptive``: clip the update to Flower's ``clipping_norm``
    (sent with it) and report weight 1 (:mod:`hospfed.client.central_dp`)."""

    HOSPITAL = "hospital"
    ACCURACY = "accuracy"
    AUC = "auc"
    MACRO_F1 = "macro-f1"
    RMSE = "rmse"
    MAE = "mae"
    LOSS = "loss"
    TRAIN_LOSS = "train-loss"
    EPSILON = "epsilon-spent"
    NOISE_MULTIPLIER = "noise-multiplier"
    NORM_BIT = "norm_bit"
    """Flower's ``KEY_NORM_BIT``: adaptive central DP's "my update was clipped"."""


SCORE_KEYS: tuple[str, ...] = (
    Key.ACCURACY,
    Key.AUC,
    Key.MACRO_F1,
    Key.RMSE,
    Key.MAE,
    Key.LOSS,
)
"""A model's scores on a held-out set (a personalised model's carry
:data:`~hospfed.common.personal.PERSONAL_PREFIX`)."""

METRIC_WHITELIST: frozenset[str] = frozenset(
    {
        Key.HOSPITAL,
        *SCORE_KEYS,
        *(PERSONAL_PREFIX + key for key in SCORE_KEYS),
        Key.TRAIN_LOSS,
        Key.EPSILON,
        Key.NOISE_MULTIPLIER,
        Key.NORM_BIT,
    }
)
"""The only metric names a hospital may send."""

PROPERTY_WHITELIST: frozenset[str] = frozenset({Key.HOSPITAL, Key.INPUT_SUMS})
"""The only properties a hospital may send (its answer to a sums query)."""


def encode_instructions(
    plan: TrainPlan,
    spec: ModelSpec,
    server_round: int,
    schema: DatasetSchema,
    *,
    task: LearningTask,
    scaling: Scaling | None = None,
) -> dict[str, Scalar]:
    """Flatten a round's instructions into a Flower config.

    Parameters
    ----------
    plan : TrainPlan
        Local training (its seed is the run's seed).
    spec : ModelSpec
        The model.
    server_round : int
        The round.
    schema : DatasetSchema
        The prepared-data schema every hospital must have trained on.
    task : LearningTask
        How every hospital builds its model inputs (sent whole, with its
        fingerprint).
    scaling : Scaling, optional
        The federation's input statistics (a task standardising by
        federation).

    Returns
    -------
    dict
        Config of :class:`Key` entries.

    """
    return {
        Key.SERVER_ROUND: server_round,
        Key.LEARNING_RATE: plan.learning_rate,
        Key.LOCAL_STEPS: plan.local_steps,
        Key.BATCH_SIZE: plan.batch_size,
        Key.OPTIMIZER: plan.optimizer,
        Key.PROXIMAL_MU: plan.proximal_mu,
        Key.SEED: plan.seed,
        Key.MODEL_SPEC: json.dumps(asdict(spec)),
        Key.SCHEMA: dumps_schema(schema),
        Key.TASK: dumps_task(task),
        Key.TASK_FINGERPRINT: task.fingerprint(),
        **({} if scaling is None else {Key.SCALING: scaling.to_json()}),
    }


def decode_scaling(config: Mapping[str, Scalar]) -> Scaling | None:
    """The federation's input statistics in a round's config, if it carries them.

    Raises
    ------
    ConfigError
        If they are malformed.

    """
    if Key.SCALING not in config:
        return None
    return Scaling.from_json(str(config[Key.SCALING]))


def decode_spec(config: Mapping[str, Scalar]) -> ModelSpec:
    """Read the model spec out of a round's config.

    Raises
    ------
    ConfigError
        If the spec is missing or malformed.

    """
    try:
        raw = json.loads(str(config[Key.MODEL_SPEC]))
        return ModelSpec(
            input_dim=int(raw["input_dim"]),
            hidden=tuple(int(w) for w in raw["hidden"]),
            activation=raw["activation"],
            output=raw.get("output", "binary"),
            num_classes=int(raw.get("num_classes", 2)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"instructions carry no valid {Key.MODEL_SPEC}: {exc}"
        ) from exc


def decode_schema(config: Mapping[str, Scalar]) -> DatasetSchema:
    """Read the run's dataset schema out of a round's config.

    Raises
    ------
    ConfigError
        If it is missing or malformed.

    """
    if Key.SCHEMA not in config:
        raise ConfigError(f"instructions carry no {Key.SCHEMA}")
    try:
        return loads_schema(str(config[Key.SCHEMA]))
    except SchemaError as exc:
        raise ConfigError(f"instructions carry a bad {Key.SCHEMA}: {exc}") from exc


def decode_task(config: Mapping[str, Scalar]) -> LearningTask:
    """Read the run's learning task out of a round's config.

    Raises
    ------
    ConfigError
        If it is missing or malformed, or its fingerprint is not the one
        sent with it.

    """
    if Key.TASK not in config or Key.TASK_FINGERPRINT not in config:
        raise ConfigError(f"instructions carry no {Key.TASK} and fingerprint")
    try:
        task = loads_task(str(config[Key.TASK]), fmt="json")
    except ConfigError as exc:
        raise ConfigError(f"instructions carry a bad {Key.TASK}: {exc}") from exc
    if task.fingerprint() != str(config[Key.TASK_FINGERPRINT]):
        raise ConfigError(
            f"the run's task {task.name!r} does not match the fingerprint sent "
            "with it; the coordinator and this hospital disagree on the task"
        )
    return task


def decode_plan(config: Mapping[str, Scalar], *, seed: int) -> TrainPlan:
    """Read a round's :class:`TrainPlan`, with the hospital's own ``seed``.

    Raises
    ------
    ConfigError
        If a key is missing or a value is not allowed.

    """
    with _instruction_errors():
        return TrainPlan(
            learning_rate=float(config[Key.LEARNING_RATE]),
            local_steps=int(config[Key.LOCAL_STEPS]),
            batch_size=int(config[Key.BATCH_SIZE]),
            optimizer=str(config[Key.OPTIMIZER]),  # type: ignore[arg-type]
            proximal_mu=float(config[Key.PROXIMAL_MU]),
            seed=seed,
        )


def decode_round(config: Mapping[str, Scalar]) -> tuple[int, int]:
    """Read ``(server round, run seed)`` from a round's config.

    Parameters
    ----------
    config : Mapping
        The round's instructions.

    Returns
    -------
    tuple of int
        The server round and the run's seed.

    Raises
    ------
    ConfigError
        If either is missing or not a whole number.

    """
    with _instruction_errors():
        return int(config[Key.SERVER_ROUND]), int(config[Key.SEED])


@contextmanager
def _instruction_errors() -> Iterator[None]:
    """Turn a missing key or a bad value in the instructions into ConfigError."""
    try:
        yield
    except KeyError as exc:
        raise ConfigError(f"instructions are missing {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"instructions carry a bad value: {exc}") from exc
