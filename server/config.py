"""The coordinator's run configuration, read once into a frozen dataclass.

Keys are kebab-case, as in Flower's ``[tool.flwr.app.config]``. Defaults
are FLamby's tuned Fed-Heart-Disease settings: FedAvg client SGD with
learning rate 0.001, 100 local steps of batch 4, 15 rounds; the adaptive
strategies (FedAdam, FedYogi, FedAdagrad) use client learning rate 0.003162,
betas 0.9/0.999 and tau 1e-8; FedYogi's server learning rate is FLamby's
0.01; FedAdam's 0.03 and FedAdagrad's 0.1 were first picked on the test sets,
then re-chosen with ``hospfed-sim tune`` from 0.01, 0.03 and 0.1 on each
hospital's validation rows only (seeds 0-4): FedAdagrad's 0.1 again; for
FedAdam validation cannot tell 0.03 from 0.1 (0.7258 and 0.7260), so 0.03
stays (see README).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hospfed.common.config import (
    ConfigMapping,
    get_choice,
    get_float,
    get_int,
    get_widths,
)
from hospfed.common.datasets import (
    DEFAULT_RAW_SCHEMA,
    FED_HEART_TASK,
    resolve_schema,
    resolve_task,
)
from hospfed.common.errors import ConfigError
from hospfed.common.model import ACTIVATIONS, ModelSpec
from hospfed.common.personal import PersonalPlan
from hospfed.common.schema import DatasetSchema
from hospfed.common.task import LearningTask, check_task_reads
from hospfed.common.training import TrainPlan
from hospfed.server.central_dp import (
    CENTRAL_DP_KEYS,
    CentralDpSettings,
    read_central_dp,
)
from hospfed.server.evaluation import EVALUATION_KEYS, read_evaluation
from hospfed.server.secagg import SECAGG_KEYS, SecAggSettings, read_secagg

STRATEGIES: tuple[str, ...] = (
    "fedavg",
    "fedprox",
    "fedadam",
    "fedyogi",
    "fedadagrad",
    "fedmedian",
    "fedtrimmedavg",
    "krum",
)
ADAPTIVE_STRATEGIES = frozenset({"fedadam", "fedyogi", "fedadagrad"})
ROBUST_STRATEGIES = frozenset({"fedmedian", "fedtrimmedavg", "krum"})
"""Byzantine-robust aggregation (Flower's FedMedian, FedTrimmedAvg, Krum):
they read every hospital's update, so secure aggregation rules them out."""
DEFAULT_TRIM_FRACTION = 0.2

DEFAULT_ROUNDS = 15
DEFAULT_CLIENT_LR = {
    "fedavg": 0.001,
    "fedprox": 0.001,
    **{name: 0.001 for name in ROBUST_STRATEGIES},  # FedAvg's, as they average
}
DEFAULT_ADAPTIVE_CLIENT_LR = 0.003162
DEFAULT_PROXIMAL_MU = 0.1
DEFAULT_SERVER_LR = {"fedyogi": 0.01, "fedadam": 0.03, "fedadagrad": 0.1}


RUN_CONFIG_KEYS: tuple[str, ...] = (
    "num-rounds",
    "strategy",
    "min-hospitals",
    "learning-rate",
    "local-steps",
    "batch-size",
    "proximal-mu",
    "server-learning-rate",
    "beta-1",
    "beta-2",
    "tau",
    "model-input-dim",
    "model-hidden",
    "model-activation",
    "seed",
    "out-dir",
    "schema",
    "task",
    "fraction-fit",
    "fraction-evaluate",
    "trim-fraction",
    "byzantine-hospitals",
    *SECAGG_KEYS,
    "max-update-norm",
    *CENTRAL_DP_KEYS,
    *EVALUATION_KEYS,
)
"""Every key a run config may hold; any other is refused (a typo must not be
silently ignored)."""


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Everything the coordinator decides for one training run.

    Attributes
    ----------
    num_rounds : int
        Federated rounds.
    strategy : str
        One of :data:`STRATEGIES`.
    min_hospitals : int
        Fewest successful results a round accepts; fewer fails the run.
    train : TrainPlan
        Local training every hospital runs each round (its seed is the run's
        seed; each hospital derives its own batch order from it).
    server_learning_rate, beta_1, beta_2, tau : float
        Server-optimizer settings of the adaptive strategies.
    model : ModelSpec
        The model.
    seed : int
        Seed of the initial weights and of local batch orders.
    out_dir : Path or None
        Where the results directory is written; None writes nothing.
    schema : str
        The raw-export schema hospitals prepare under (built-in name or a
        schema file on the coordinator).
    data_schema : DatasetSchema
        What ``schema`` de-identifies to: every hospital's prepared data
        must match it, column for column.
    task : LearningTask
        What the model learns (run config ``task``: a built-in name or a
        task file on the coordinator; default Fed-Heart-Disease's): sent
        whole with its fingerprint every round; it fixes the model's inputs
        and output.
    fraction_fit, fraction_evaluate : float
        Share of the available hospitals sampled to train, and to evaluate,
        each round (Flower's sampling; at least ``min_hospitals``).
    secure_aggregation : SecAggSettings or None
        SecAgg+ parameters; None: the coordinator sees each hospital's
        update (and checks it on its own).
    max_update_norm : float or None
        Bound on the L2 norm of an update (weights minus the round's global
        weights): a hospital's update beyond it is left out of the round
        (with secure aggregation: the aggregate's, which fails the round).
    central_dp : CentralDpSettings or None
        Client-level central DP (:mod:`hospfed.server.central_dp`); None: off.
    evaluate_on : str
        The set evaluation rounds score (:data:`~hospfed.common.personal.EVALUATE_ON`).
    personal : PersonalPlan or None
        How each hospital adapts the final global model (None: it does not).

    """

    num_rounds: int
    strategy: str
    min_hospitals: int
    train: TrainPlan
    server_learning_rate: float
    beta_1: float
    beta_2: float
    tau: float
    model: ModelSpec
    seed: int
    out_dir: Path | None
    schema: str = DEFAULT_RAW_SCHEMA
    data_schema: DatasetSchema = field(
        default_factory=lambda: resolve_schema(DEFAULT_RAW_SCHEMA).deidentified()
    )
    task: LearningTask = FED_HEART_TASK
    fraction_fit: float = 1.0
    fraction_evaluate: float = 1.0
    secure_aggregation: SecAggSettings | None = None
    trim_fraction: float | None = None
    byzantine_hospitals: int | None = None
    max_update_norm: float | None = None
    central_dp: CentralDpSettings | None = None
    evaluate_on: str = "test"
    personal: PersonalPlan | None = None

    @classmethod
    def from_mapping(
        cls,
        config: ConfigMapping,
        *,
        raw_schema: DatasetSchema | None = None,
        task: LearningTask | None = None,
    ) -> RunConfig:
        """Read a run config (e.g. Flower's ``context.run_config``).

        ``raw_schema`` and ``task``, when given, are used instead of the
        ``schema`` and ``task`` keys (a simulation that resolved or drew
        them itself); they are checked the same way.

        Raises
        ------
        ConfigError
            Naming the key, the bad value and what is allowed.

        """
        unknown = sorted(set(config) - set(RUN_CONFIG_KEYS))
        if unknown:
            raise ConfigError(
                f"unknown run-config key {unknown[0]!r}; allowed: "
                f"{', '.join(RUN_CONFIG_KEYS)}"
            )
        strategy = get_choice(config, "strategy", "fedavg", STRATEGIES)
        default_lr = DEFAULT_CLIENT_LR.get(strategy, DEFAULT_ADAPTIVE_CLIENT_LR)
        mu_default = DEFAULT_PROXIMAL_MU if strategy == "fedprox" else 0.0
        seed = get_int(config, "seed", 0, minimum=0)
        out = str(config.get("out-dir", "")).strip()
        schema = str(config.get("schema", DEFAULT_RAW_SCHEMA)).strip()
        min_hospitals = get_int(config, "min-hospitals", 2, minimum=1)
        max_norm = get_float(config, "max-update-norm", 0.0, minimum=0)
        secure = read_secagg(
            config,
            min_hospitals=min_hospitals,
            unit_weights=str(config.get("central-dp", "off")).strip().lower() != "off",
        )
        central = read_central_dp(config, strategy=strategy, secure=secure is not None)
        if raw_schema is not None:
            schema = raw_schema.name
        data_schema = (raw_schema or resolve_schema(schema)).deidentified()
        task = _check_task(
            task or resolve_task(str(config.get("task", FED_HEART_TASK.name)).strip()),
            data_schema,
        )
        if central is not None and task.standardise == "federation":
            raise ConfigError(
                f"task {task.name!r} standardises by federation, and each "
                "hospital's exact input sums would reveal what client-level "
                "central DP protects (which hospitals took part, with what "
                'data); use a task with [standardise] by = "hospital"'
            )
        train = TrainPlan(
            learning_rate=get_float(config, "learning-rate", default_lr, positive=True),
            local_steps=get_int(config, "local-steps", 100, minimum=1),
            batch_size=get_int(config, "batch-size", 4, minimum=1),
            optimizer="sgd",
            proximal_mu=get_float(config, "proximal-mu", mu_default, minimum=0),
            seed=seed,
        )
        evaluate_on, personal = read_evaluation(config, task, train)
        return cls(
            num_rounds=get_int(config, "num-rounds", DEFAULT_ROUNDS, minimum=1),
            strategy=strategy,
            min_hospitals=min_hospitals,
            train=train,
            server_learning_rate=get_float(
                config,
                "server-learning-rate",
                DEFAULT_SERVER_LR.get(strategy, 0.01),
                positive=True,
            ),
            beta_1=get_float(config, "beta-1", 0.9, minimum=0),
            beta_2=get_float(config, "beta-2", 0.999, minimum=0),
            tau=get_float(config, "tau", 1e-8, positive=True),
            model=_model_spec(config, task),
            seed=seed,
            out_dir=Path(out) if out else None,
            schema=schema,
            data_schema=data_schema,
            task=task,
            fraction_fit=_fraction(config, "fraction-fit"),
            fraction_evaluate=_fraction(config, "fraction-evaluate"),
            secure_aggregation=secure,
            max_update_norm=max_norm if max_norm > 0 else None,
            central_dp=central,
            evaluate_on=evaluate_on,
            personal=personal,
            **_robust_settings(config, strategy, secure=secure is not None),
        )


def _check_task(task: LearningTask, data_schema: DatasetSchema) -> LearningTask:
    """The run's task, which must read the schema hospitals prepare under."""
    if task.schema != data_schema.name:
        raise ConfigError(
            f"task {task.name!r} reads prepared data of schema {task.schema!r}, "
            f"but the run's schema de-identifies to {data_schema.name!r}; set "
            "run-config 'schema' to the raw-export schema the task was written for"
        )
    check_task_reads(task, data_schema)
    return task


def _model_spec(config: ConfigMapping, task: LearningTask) -> ModelSpec:
    """The model the task fixes: its inputs' width and the label's output."""
    width = len(task.input_names)
    given = get_int(config, "model-input-dim", width, minimum=1)
    if given != width:
        raise ConfigError(
            f"model-input-dim is {given} but task {task.name!r} builds {width} "
            "inputs; leave model-input-dim out (the task sets it)"
        )
    kind = task.label.kind
    return ModelSpec(
        input_dim=width,
        hidden=get_widths(config, "model-hidden"),
        activation=get_choice(config, "model-activation", "relu", ACTIVATIONS),  # type: ignore[arg-type]
        output=kind,
        num_classes=task.num_classes if kind == "multiclass" else 2,
    )


def _fraction(config: ConfigMapping, key: str) -> float:
    value = get_float(config, key, 1.0, positive=True)
    if value > 1:
        raise ConfigError(f"{key} must be in (0, 1], got {value}")
    return value


def _robust_settings(
    config: ConfigMapping, strategy: str, *, secure: bool
) -> dict[str, Any]:
    """Trimmed mean's fraction and Krum's assumed Byzantine hospitals.

    Raises
    ------
    ConfigError
        If they are given to another strategy, are out of range, or the
        strategy is robust while secure aggregation is on.

    """
    given = [k for k in ("trim-fraction", "byzantine-hospitals") if k in config]
    if strategy not in ROBUST_STRATEGIES:
        if given:
            raise ConfigError(
                f"run-config key {given[0]!r} applies to robust strategies "
                f"({', '.join(sorted(ROBUST_STRATEGIES))}), not {strategy!r}"
            )
        return {}
    if secure:
        raise ConfigError(
            f"strategy {strategy!r} needs each hospital's update, but secure "
            "aggregation shows the coordinator only their sum; turn secure "
            "aggregation off to use it (run config secure-aggregation = false, "
            "hospfed-sim --no-secure-aggregation): the coordinator then sees "
            "every hospital's noised update"
        )
    if strategy == "krum":
        if "trim-fraction" in config:
            raise ConfigError("'trim-fraction' does not apply to 'krum'")
        return {
            "byzantine_hospitals": get_int(config, "byzantine-hospitals", 0, minimum=0)
        }
    if "byzantine-hospitals" in config:
        raise ConfigError(f"'byzantine-hospitals' applies to krum, not {strategy!r}")
    if strategy == "fedtrimmedavg":
        fraction = get_float(config, "trim-fraction", DEFAULT_TRIM_FRACTION, minimum=0)
        if not fraction < 0.5:
            raise ConfigError(f"trim-fraction must be in [0, 0.5), got {fraction}")
        return {"trim_fraction": fraction}
    if given:
        raise ConfigError(f"{given[0]!r} does not apply to {strategy!r}")
    return {}
