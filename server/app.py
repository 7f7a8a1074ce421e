"""The Flower ServerApp: one server path for simulation and deployment.

The run goes through Flower's legacy ``LegacyContext`` + ``DefaultWorkflow``,
the path on which Flower 1.42 offers SecAgg+ (``SecAggPlusWorkflow`` as the
fit workflow), so secure aggregation can be switched on by config without a
second server path. ``app`` reads ``context.run_config`` (deployment, via
the ``hospfed.server.app:app`` a Flower deployment loads);
``make_server_app`` binds a ready :class:`RunConfig` and an
optional observer (the simulation's progress display).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from logging import INFO

from flwr.app import Context
from flwr.common import log, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat
from flwr.server import LegacyContext, ServerApp, ServerConfig
from flwr.server.workflow import DefaultWorkflow
from flwr.server.workflow.constant import MAIN_PARAMS_RECORD
from flwr.serverapp import Grid

from hospfed.common.model import Weights, initial_weights
from hospfed.server.config import RunConfig
from hospfed.server.history import RoundObserver, RunHistory
from hospfed.server.results import describe_run, privacy_summary, write_results
from hospfed.server.strategy import RoundGuard, build_strategy


@dataclass
class RunResult:
    """What a finished run produced.

    Attributes
    ----------
    history : RunHistory
        Every round's metrics from every hospital.
    weights : list of numpy.ndarray
        Final global weights (canonical layout).
    seconds : float
        Wall time of the rounds.

    """

    history: RunHistory
    weights: Weights
    seconds: float


def run_federation(
    grid: Grid,
    context: Context,
    config: RunConfig,
    observer: RoundObserver | None = None,
) -> RunResult:
    """Run ``config.num_rounds`` federated rounds and write the results.

    Parameters
    ----------
    grid : Grid
        Flower's grid (deployment or simulation).
    context : Context
        The ServerApp's context.
    config : RunConfig
        The run.
    observer : RoundObserver, optional
        Told about each finished round.

    Returns
    -------
    RunResult
        History, final weights and wall time; also written to
        ``config.out_dir`` when set.

    Raises
    ------
    RoundFailedError
        If a round gets fewer than ``config.min_hospitals`` results.

    """
    start = time.perf_counter()
    history = RunHistory()
    strategy = build_strategy(config, initial_weights(config.model, config.seed))
    guard = RoundGuard(
        strategy,
        min_results=config.min_hospitals,
        num_rounds=config.num_rounds,
        history=history,
        observer=observer,
    )
    log(
        INFO,
        "run_federation: %s, %s rounds, at least %s hospitals per round",
        config.strategy,
        config.num_rounds,
        config.min_hospitals,
    )
    legacy = LegacyContext(
        context=context,
        config=ServerConfig(num_rounds=config.num_rounds),
        strategy=guard,
    )
    DefaultWorkflow()(grid, legacy)
    record = legacy.state.array_records[MAIN_PARAMS_RECORD]
    weights = parameters_to_ndarrays(
        compat.arrayrecord_to_parameters(record, keep_input=True)
    )
    result = RunResult(history, weights, time.perf_counter() - start)
    if config.out_dir is not None:
        title = f"{config.strategy}, {config.num_rounds} rounds, seed {config.seed}"
        epsilon = privacy_summary(history)["max_epsilon"]
        title += (
            ", non-private"
            if epsilon is None
            else f", DP-SGD max epsilon {epsilon:.2f}"
        )
        run = describe_run(config) | {"seconds": result.seconds, "title": title}
        write_results(config.out_dir, history=history, weights=weights, run=run)
        log(INFO, "run_federation: results written to %s", config.out_dir)
    return result


def make_server_app(
    config: RunConfig,
    observer: RoundObserver | None = None,
    on_result: Callable[[RunResult], None] | None = None,
) -> ServerApp:
    """Return a ServerApp bound to ``config`` (ignores the run config).

    Parameters
    ----------
    config : RunConfig
        The run.
    observer : RoundObserver, optional
        Told about each finished round.
    on_result : callable, optional
        Given the :class:`RunResult` when the run finishes.

    """
    server_app = ServerApp()

    @server_app.main()
    def _main(grid: Grid, context: Context) -> None:
        result = run_federation(grid, context, config, observer)
        if on_result is not None:
            on_result(result)

    return server_app


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Deployment entry point: read ``context.run_config`` and run."""
    run_federation(grid, context, RunConfig.from_mapping(context.run_config))
