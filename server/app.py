"""The Flower ServerApp: one server path for simulation and deployment.

The run goes through Flower's legacy ``LegacyContext`` + ``DefaultWorkflow``,
the path on which Flower 1.42 offers SecAgg+ (``SecAggPlusWorkflow`` as the
fit workflow), so secure aggregation can be switched on by config without a
second server path. ``app`` reads ``context.run_config`` (deployment, via
the ``hospfed.server.app:app`` a Flower deployment loads);
``make_server_app`` binds a ready :class:`RunConfig`, an optional
observer (the simulation's progress display), a stop request and a
checkpoint to resume. Every completed round is checkpointed and its
results written, so a run that stops early keeps what it learned.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from logging import INFO
from typing import Any

from flwr.app import Context
from flwr.common import log
from flwr.server import LegacyContext, ServerApp, ServerConfig
from flwr.server.workflow import DefaultWorkflow
from flwr.serverapp import Grid

from hospfed.common.errors import ConfigError, HospfedError
from hospfed.common.model import Weights, initial_weights
from hospfed.common.scaling import Scaling
from hospfed.server.central_dp import central_dp_strategy
from hospfed.server.checkpoint import (
    Checkpoint,
    load_checkpoint,
    restore_strategy_state,
    run_identity,
)
from hospfed.server.config import RunConfig
from hospfed.server.factory import build_strategy
from hospfed.server.history import RoundObserver, RunHistory
from hospfed.server.recorder import RunRecorder
from hospfed.server.replies import ReplyLog
from hospfed.server.scaling_query import query_scaling
from hospfed.server.secagg import GuardedSecAggPlusWorkflow, StageListener
from hospfed.server.stop import RunInterruptedError, StopRequest
from hospfed.server.strategy import RoundGuard
from hospfed.server.validation import UpdateRules


@dataclass
class RunResult:
    """What a run produced, however it ended.

    Attributes
    ----------
    history : RunHistory
        Every completed round's metrics from every hospital.
    weights : list of numpy.ndarray
        Global weights after the last completed round (canonical layout).
    seconds : float
        Wall time of the rounds.
    status : str
        ``complete``, ``interrupted`` or ``failed``.
    error : HospfedError or None
        Why an incomplete run stopped (raise it to fail the caller).
    completed_rounds : int
        The last completed round.

    """

    history: RunHistory
    weights: Weights
    seconds: float
    status: str = "complete"
    error: HospfedError | None = None
    completed_rounds: int = 0


def run_federation(
    grid: Grid,
    context: Context,
    config: RunConfig,
    observer: RoundObserver | None = None,
    *,
    stop: StopRequest | None = None,
    resume: Checkpoint | None = None,
    settings: Mapping[str, Any] | None = None,
    on_stage: StageListener | None = None,
) -> RunResult:
    """Run ``config.num_rounds`` federated rounds; keep results as they come.

    With ``config.out_dir`` set, every completed round is checkpointed and
    its results written (:class:`~hospfed.server.recorder.RunRecorder`), and
    a run that stops early writes its final results marked ``interrupted``
    or ``failed`` with the reason.

    Parameters
    ----------
    grid : Grid
        Flower's grid (deployment or simulation).
    context : Context
        The ServerApp's context.
    config : RunConfig
        The run.
    observer : RoundObserver, optional
        Told about each finished round (after its checkpoint is written).
    stop : StopRequest, optional
        When set, the run stops before its next round.
    resume : Checkpoint, optional
        Continue this checkpoint (its settings must be ``config``'s; the
        caller checks that) from its last completed round.
    settings : Mapping, optional
        The caller's own settings (recorded in ``metrics.json``, and part
        of the config hash that a resume must match).
    on_stage : callable, optional
        With secure aggregation: told ``(round, stage)`` as each SecAgg+
        stage starts (a progress display).

    Returns
    -------
    RunResult
        History, weights after the last completed round, wall time, and
        how the run ended. A run that stopped early carries the error
        (:class:`~hospfed.common.errors.RoundFailedError`,
        :class:`~hospfed.server.stop.RunInterruptedError`) instead of
        raising it.

    Raises
    ------
    ConfigError
        If ``resume`` has already completed ``config.num_rounds`` rounds.

    """
    start = time.perf_counter()
    done = 0 if resume is None else resume.completed_rounds
    if done >= config.num_rounds:
        raise ConfigError(
            f"the checkpoint has completed {done} rounds; ask for more rounds "
            f"than that (got {config.num_rounds})"
        )
    history = RunHistory(list(resume.history.rounds) if resume else [])
    weights = (
        list(resume.weights)
        if resume is not None
        else initial_weights(config.model, config.seed)
    )
    scaling: dict[str, Scaling] = {}  # the federation's statistics, when needed
    strategy = build_strategy(config, weights, lambda: scaling.get("federation"))
    if resume is not None:
        restore_strategy_state(strategy, resume.optimizer)
    if config.central_dp is not None:
        strategy = central_dp_strategy(
            strategy,
            config.central_dp,
            history,
            min_results=config.min_hospitals,
            secure=config.secure_aggregation is not None,
        )
    settings = dict(settings or {})
    recorder = None
    if config.out_dir is not None:
        recorder = RunRecorder(
            config,
            identity=run_identity(config, settings),
            settings=settings,
            history=history,
            strategy=strategy,
            resume=resume,
        )
    replies = ReplyLog(grid)
    secagg = config.secure_aggregation
    rules = UpdateRules(
        shapes=config.model.weight_shapes(),
        max_update_norm=config.max_update_norm,
        max_weight=None if secagg is None else secagg.max_weight,
    )
    guard = RoundGuard(
        strategy,
        min_results=config.min_hospitals,
        num_rounds=config.num_rounds,
        history=history,
        observer=observer,
        weights=weights,
        first_round=done + 1,
        stop=stop,
        replies=replies,
        on_round_complete=None if recorder is None else recorder.round_completed,
        rules=rules,
        seed=config.seed,
        evaluate_on=config.evaluate_on,
    )
    log(
        INFO,
        "run_federation: %s, rounds %s to %s, at least %s hospitals per round, "
        "secure aggregation %s",
        config.strategy,
        done + 1,
        config.num_rounds,
        config.min_hospitals,
        "off" if secagg is None else "on (SecAgg+)",
    )
    workflow = DefaultWorkflow(
        fit_workflow=None
        if secagg is None
        else GuardedSecAggPlusWorkflow(secagg, on_stage=on_stage)
    )
    legacy = LegacyContext(
        context=context,
        config=ServerConfig(num_rounds=config.num_rounds - done),
        strategy=guard,
    )
    status, error = _execute(
        lambda: _prepare_and_run(
            replies, legacy, workflow, config, scaling, recorder, done
        ),
        recorder,
        guard,
    )
    completed = guard.completed_rounds
    failed_round = None
    if status == "failed" and len(history.rounds) > completed:
        failed_round = history.rounds[completed]
    if recorder is not None:
        recorder.finish(status, None if error is None else str(error), failed_round)
        log(INFO, "run_federation: results written to %s", config.out_dir)
    return RunResult(
        RunHistory(history.rounds[:completed]),
        guard.weights if guard.weights is not None else weights,
        time.perf_counter() - start,
        status=status,
        error=error,
        completed_rounds=completed,
    )


def make_server_app(
    config: RunConfig,
    observer: RoundObserver | None = None,
    on_result: Callable[[RunResult], None] | None = None,
    *,
    stop: StopRequest | None = None,
    resume: Checkpoint | None = None,
    settings: Mapping[str, Any] | None = None,
    on_stage: StageListener | None = None,
) -> ServerApp:
    """Return a ServerApp bound to ``config`` (ignores the run config).

    Parameters
    ----------
    config : RunConfig
        The run.
    observer : RoundObserver, optional
        Told about each finished round.
    on_result : callable, optional
        Given the :class:`RunResult` when the run ends, however it ended;
        without it, a run that stopped early raises its error.
    stop, resume, settings, on_stage
        As for :func:`run_federation`.

    """
    server_app = ServerApp()

    @server_app.main()
    def _main(grid: Grid, context: Context) -> None:
        result = run_federation(
            grid,
            context,
            config,
            observer,
            stop=stop,
            resume=resume,
            settings=settings,
            on_stage=on_stage,
        )
        if on_result is not None:
            on_result(result)
        elif result.error is not None:
            raise result.error

    return server_app


app = ServerApp()


def _prepare_and_run(
    grid: Grid,
    legacy: LegacyContext,
    workflow: DefaultWorkflow,
    config: RunConfig,
    scaling: dict[str, Scaling],
    recorder: RunRecorder | None,
    done: int,
) -> None:
    """Ask for the federation's input statistics when the task needs them; run."""
    if config.task.standardise == "federation":
        recorded = recorder.book.get("scaling") if recorder is not None else None
        if recorded is not None:  # a resumed run: the statistics it trained with
            scaling["federation"] = Scaling.from_json(json.dumps(recorded))
        else:
            found, hospitals = query_scaling(grid, config, first_round=done + 1)
            scaling["federation"] = found
            if recorder is not None:
                recorder.book["scaling"] = json.loads(found.to_json()) | {
                    "hospitals": hospitals
                }
    workflow(grid, legacy)


def _execute(
    run: Callable[[], None], recorder: RunRecorder | None, guard: RoundGuard
) -> tuple[str, HospfedError | None]:
    """Run; return how it ended (a stop or a crash is recorded, then raised)."""
    try:
        run()
    except RunInterruptedError as exc:
        return "interrupted", exc
    except HospfedError as exc:
        return "failed", exc
    except (SystemExit, KeyboardInterrupt):  # Flower ends a stopped run so
        if recorder is not None:
            recorder.finish(
                "interrupted",
                f"the run was stopped during round {guard.completed_rounds + 1} "
                "(hospfed-server run interrupted, or flwr stop)",
            )
        raise
    except BaseException as exc:
        if recorder is not None:
            recorder.finish("failed", f"{type(exc).__name__}: {exc}")
        raise
    return "complete", None


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Deployment entry point: read ``context.run_config`` and run.

    The deployed app declares every run-config key with the default ""
    (``hospfed-server start`` writes it): those are unset, hospfed's own
    defaults apply.
    """
    given = {k: v for k, v in context.run_config.items() if v != ""}
    resume = str(given.pop("resume", "")).lower() in ("true", "1", "yes")
    config = RunConfig.from_mapping(given)
    checkpoint = None
    if resume:
        if config.out_dir is None:
            raise ConfigError(
                "resume needs the run's out-dir (hospfed-server run --resume)"
            )
        checkpoint = load_checkpoint(config.out_dir)
    result = run_federation(grid, context, config, resume=checkpoint)
    if result.error is not None:
        raise result.error
