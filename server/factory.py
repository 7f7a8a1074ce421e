"""The strategy factory: a run config becomes one of Flower's strategies.

:func:`build_strategy` turns a :class:`~hospfed.server.config.RunConfig`
into FedAvg, FedProx, FedAdam, FedYogi, FedAdagrad or a Byzantine-robust
aggregator, always sending the same round instructions to every hospital
(and, for evaluation, which set to score and, in the final round, how to
personalise). :class:`~hospfed.server.strategy.RoundGuard` wraps it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flwr.common import Scalar, ndarrays_to_parameters
from flwr.server.strategy import (
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    FedYogi,
    Krum,
    Strategy,
)

from hospfed.common.errors import ConfigError
from hospfed.common.model import Weights
from hospfed.common.personal import evaluation_instructions, split_of_round
from hospfed.common.protocol import Key, encode_instructions
from hospfed.common.scaling import Scaling
from hospfed.server.config import STRATEGIES, RunConfig

__all__ = ["build_strategy"]


def build_strategy(
    config: RunConfig,
    initial: Weights,
    scaling: Callable[[], Scaling | None] = lambda: None,
) -> Strategy:
    """Build the Flower strategy named by ``config.strategy``.

    Parameters
    ----------
    config : RunConfig
        The run's configuration.
    initial : list of numpy.ndarray
        Initial global weights (canonical layout).
    scaling : callable, optional
        Gives the federation's input statistics when the instructions are
        made (known only once the hospitals have sent their sums, after the
        strategy is built); None for tasks that do not need them.

    Returns
    -------
    flwr.server.strategy.Strategy
        A legacy Flower strategy that samples every available hospital.

    """
    config.model.check_weights(initial)

    def instructions(server_round: int) -> dict[str, Scalar]:
        return encode_instructions(
            config.train,
            config.model,
            server_round,
            config.data_schema,
            task=config.task,
            scaling=scaling(),
        )

    def evaluation(server_round: int) -> dict[str, Scalar]:
        last = server_round >= config.num_rounds
        split = split_of_round(config.evaluate_on, server_round, config.num_rounds)
        personal = config.personal if last else None
        return instructions(server_round) | evaluation_instructions(split, personal)

    common: dict[str, Any] = {
        "fraction_fit": config.fraction_fit,
        "fraction_evaluate": config.fraction_evaluate,
        "min_fit_clients": config.min_hospitals,
        "min_evaluate_clients": config.min_hospitals,
        "min_available_clients": config.min_hospitals,
        "on_fit_config_fn": instructions,
        "on_evaluate_config_fn": evaluation,
        "initial_parameters": ndarrays_to_parameters(initial),
        "accept_failures": True,
        "fit_metrics_aggregation_fn": _weighted_train_loss,
        "evaluate_metrics_aggregation_fn": _no_metrics,  # RoundGuard summarises
    }
    adaptive: dict[str, Any] = {
        "eta": config.server_learning_rate,
        "eta_l": config.train.learning_rate,
        "tau": config.tau,
    }
    betas: dict[str, Any] = {"beta_1": config.beta_1, "beta_2": config.beta_2}
    factories: dict[str, Callable[[], Strategy]] = {
        "fedavg": lambda: FedAvg(**common),
        "fedprox": lambda: FedProx(**common, proximal_mu=config.train.proximal_mu),
        "fedadam": lambda: FedAdam(**common, **adaptive, **betas),
        "fedyogi": lambda: FedYogi(**common, **adaptive, **betas),
        "fedadagrad": lambda: FedAdagrad(**common, **adaptive),
        "fedmedian": lambda: FedMedian(**common),
        "fedtrimmedavg": lambda: FedTrimmedAvg(
            **common, beta=config.trim_fraction or 0.0
        ),
        "krum": lambda: Krum(
            **common,
            num_malicious_clients=config.byzantine_hospitals or 0,
            num_clients_to_keep=0,
        ),
    }
    if config.strategy not in factories:
        raise ConfigError(
            f"unknown strategy {config.strategy!r}; allowed: {', '.join(STRATEGIES)}"
        )
    return factories[config.strategy]()


def _weighted_train_loss(
    results: list[tuple[int, dict[str, Scalar]]],
) -> dict[str, Scalar]:
    total = sum(n for n, _ in results)
    loss = sum(n * float(m.get(Key.TRAIN_LOSS, 0.0)) for n, m in results)
    return {Key.TRAIN_LOSS: loss / total} if total else {}


def _no_metrics(results: list[tuple[int, dict[str, Scalar]]]) -> dict[str, Scalar]:
    return {}
