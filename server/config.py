"""The coordinator's run configuration, read once into a frozen dataclass.

Keys are kebab-case, as in Flower's ``[tool.flwr.app.config]``. Defaults
are FLamby's tuned Fed-Heart-Disease settings: FedAvg client SGD with
learning rate 0.001, 100 local steps of batch 4, 15 rounds; the adaptive
strategies (FedAdam, FedYogi, FedAdagrad) use client learning rate 0.003162,
betas 0.9/0.999 and tau 1e-8; FedYogi's server learning rate is FLamby's
0.01, FedAdam's 0.03 and FedAdagrad's 0.1 were chosen here (from 0.01, 0.03,
0.1, mean local test accuracy over seeds 0-4; see README) because at 0.01
they are still far from converged after 15 rounds.
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
from hospfed.common.datasets import DEFAULT_RAW_SCHEMA, resolve_schema
from hospfed.common.datasets.heart import FEATURES
from hospfed.common.errors import ConfigError
from hospfed.common.model import ACTIVATIONS, ModelSpec
from hospfed.common.schema import DatasetSchema
from hospfed.common.training import TrainPlan
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
    "trim-fraction",
    "byzantine-hospitals",
    *SECAGG_KEYS,
    "max-update-norm",
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
    secure_aggregation : SecAggSettings or None
        SecAgg+ parameters; None: the coordinator sees each hospital's
        update (and checks it on its own).
    max_update_norm : float or None
        Bound on the L2 norm of an update (weights minus the round's global
        weights): a hospital's update beyond it is left out of the round
        (with secure aggregation: the aggregate's, which fails the round).

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
    secure_aggregation: SecAggSettings | None = None
    trim_fraction: float | None = None
    byzantine_hospitals: int | None = None
    max_update_norm: float | None = None

    @classmethod
    def from_mapping(cls, config: ConfigMapping) -> RunConfig:
        """Read a run config (e.g. Flower's ``context.run_config``).

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
        secure = read_secagg(config, min_hospitals=min_hospitals)
        return cls(
            num_rounds=get_int(config, "num-rounds", DEFAULT_ROUNDS, minimum=1),
            strategy=strategy,
            min_hospitals=min_hospitals,
            train=TrainPlan(
                learning_rate=get_float(
                    config, "learning-rate", default_lr, positive=True
                ),
                local_steps=get_int(config, "local-steps", 100, minimum=1),
                batch_size=get_int(config, "batch-size", 4, minimum=1),
                optimizer="sgd",
                proximal_mu=get_float(config, "proximal-mu", mu_default, minimum=0),
                seed=seed,
            ),
            server_learning_rate=get_float(
                config,
                "server-learning-rate",
                DEFAULT_SERVER_LR.get(strategy, 0.01),
                positive=True,
            ),
            beta_1=get_float(config, "beta-1", 0.9, minimum=0),
            beta_2=get_float(config, "beta-2", 0.999, minimum=0),
            tau=get_float(config, "tau", 1e-8, positive=True),
            model=ModelSpec(
                input_dim=get_int(config, "model-input-dim", len(FEATURES), minimum=1),
                hidden=get_widths(config, "model-hidden"),
                activation=get_choice(config, "model-activation", "relu", ACTIVATIONS),  # type: ignore[arg-type]
            ),
            seed=seed,
            out_dir=Path(out) if out else None,
            schema=schema,
            data_schema=resolve_schema(schema).deidentified(),
            secure_aggregation=secure,
            max_update_norm=max_norm if max_norm > 0 else None,
            **_robust_settings(config, strategy, secure=secure is not None),
        )


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
