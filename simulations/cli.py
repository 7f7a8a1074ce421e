"""``hospfed-sim``: run virtual hospitals on this machine.

``hospfed-sim heart`` runs the four-hospital Fed-Heart-Disease federation
end to end and writes a results directory (metrics.json, model.npz,
curves.png, checkpoint.npz); ``--pooled`` trains the same model on the
pooled data instead; ``--resume DIR`` continues an interrupted run.

Ctrl-C or SIGTERM stops the run after the current round: its results so
far are written (marked ``interrupted``), Ray is shut down, the workspace
removed, one line printed, and the exit code is 130 (143 for SIGTERM). A
second signal stops at once (exit 130 or 143, no traceback), keeping the
last round's checkpoint.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hospfed.client.privacy import PrivacySettings
from hospfed.common.cli import make_app, run_app
from hospfed.common.datasets.heart import HOSPITALS
from hospfed.common.errors import HospfedError
from hospfed.common.training import HospitalData
from hospfed.server.app import RunResult
from hospfed.server.central_dp import CentralDpSettings
from hospfed.server.config import DEFAULT_ROUNDS, STRATEGIES, RunConfig
from hospfed.server.history import KIND_METRICS, METRIC_LABELS, RoundRecord
from hospfed.server.stop import RunInterruptedError, StopRequest
from hospfed.simulations.flags import (
    CentralClipFlag,
    CentralDeltaFlag,
    CentralDpFlag,
    CentralNoiseFlag,
    ClipLrFlag,
    CountStddevFlag,
    DittoLambdaFlag,
    EvaluateOnFlag,
    PersonaliseFlag,
    PersonalLrFlag,
    PersonalStepsFlag,
    QuantileFlag,
    ServerLrFlag,
    ValidationFractionFlag,
    ValidationSeedFlag,
)
from hospfed.simulations.heart import (
    POOLED_EPOCHS,
    SIM_BACKENDS,
    PreparedSite,
    heart_nodes,
    prepare_sites,
    run_federated,
    run_pooled,
)
from hospfed.simulations.options import HeartPlan, explicit_flags, plan_heart
from hospfed.simulations.progress import LISTED_HOSPITALS, RoundProgress
from hospfed.simulations.run_cli import run_command
from hospfed.simulations.signals import SignalStop, signal_name
from hospfed.simulations.tune_cli import tune_command
from hospfed.simulations.workspace import Workspace

PROG = "hospfed-sim"
app = make_app("Run many virtual hospitals on one machine (research and demo).")


@app.command()
def heart(
    ctx: typer.Context,
    rounds: Annotated[int, typer.Option(min=1, help="Federated rounds.")] = (
        DEFAULT_ROUNDS
    ),
    strategy: Annotated[
        str, typer.Option(help=f"One of: {', '.join(STRATEGIES)}.")
    ] = "fedavg",
    seed: Annotated[int, typer.Option(min=0, help="Seed of weights and batches.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(help="Results directory [default: results/heart-STRATEGY]."),
    ] = None,
    pooled: Annotated[
        bool, typer.Option("--pooled", help="Train centrally on the pooled data.")
    ] = False,
    epochs: Annotated[
        int, typer.Option(min=1, help="Epochs of the --pooled reference.")
    ] = POOLED_EPOCHS,
    min_hospitals: Annotated[
        int, typer.Option(min=1, help="Fewest results a round accepts.")
    ] = len(HOSPITALS),
    backend: Annotated[
        str,
        typer.Option(
            help=f"One of: {', '.join(SIM_BACKENDS)} (mixed: Cleveland and "
            "Hungary on Keras, Switzerland and VA on PyTorch)."
        ),
    ] = "keras",
    local_steps: Annotated[
        int, typer.Option(min=1, help="Local SGD steps per hospital per round.")
    ] = 100,
    hidden: Annotated[
        str,
        typer.Option(
            help="Hidden layer widths, e.g. 64,32 [default: none: logistic "
            "regression, FLamby's model]."
        ),
    ] = "",
    epsilon: Annotated[
        float | None,
        typer.Option(
            help="DP-SGD budget of every hospital for the whole run "
            "[default: no DP, non-private]."
        ),
    ] = None,
    delta: Annotated[float, typer.Option(help="DP delta (with --epsilon).")] = 1e-3,
    clip_norm: Annotated[
        float, typer.Option(help="Per-example gradient bound (with --epsilon).")
    ] = 1.0,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            help="Keep the hospitals' privacy ledgers here across runs (with "
            "--epsilon), with each hospital's key [default: a temporary "
            "directory, removed after the run]."
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue the run in this results directory from its last "
            "completed round to --rounds (settings not given are the run's own)."
        ),
    ] = None,
    secure_aggregation: Annotated[
        bool,
        typer.Option(
            help="SecAgg+: the coordinator sees only the sum of the hospitals' "
            "updates, never one hospital's (4 shares, threshold 3: one "
            "hospital may drop out of a round)."
        ),
    ] = True,
    central_dp: CentralDpFlag = "off",
    central_noise_multiplier: CentralNoiseFlag = None,
    central_clipping_norm: CentralClipFlag = None,
    central_delta: CentralDeltaFlag = None,
    target_clipped_quantile: QuantileFlag = None,
    clip_norm_lr: ClipLrFlag = None,
    clipped_count_stddev: CountStddevFlag = None,
    validation_fraction: ValidationFractionFlag = None,
    validation_seed: ValidationSeedFlag = None,
    evaluate_on: EvaluateOnFlag = None,
    personalise: PersonaliseFlag = None,
    personal_learning_rate: PersonalLrFlag = None,
    personal_steps: PersonalStepsFlag = None,
    ditto_lambda: DittoLambdaFlag = None,
    server_learning_rate: ServerLrFlag = None,
    learning_rate: Annotated[
        float | None,
        typer.Option(help="Client learning rate [default: the strategy's]."),
    ] = None,
    verbose: Annotated[
        bool, typer.Option(help="Show Flower's and Ray's logs.")
    ] = False,
) -> None:
    """Fed-Heart-Disease: 4 real hospitals (Cleveland, Hungary, Switzerland, VA)."""
    explicit = explicit_flags(ctx)
    plan = plan_heart(ctx.params, explicit)
    console = Console()
    stop = StopRequest()
    if plan.pooled:
        _pooled(plan, console, stop)
    else:
        _federated(plan, console, stop)


def _pooled(
    plan: HeartPlan,
    console: Console,
    stop: StopRequest,
    *,
    title: str | None = None,
    parts: list[HospitalData] | None = None,
) -> None:
    config = plan.config
    title = title or f"Fed-Heart-Disease pooled, seed {config.seed}"
    start = time.perf_counter()

    def at_once(signum: int) -> None:
        _exit_at_once(f"stopped at once ({signal_name(signum)} again)", signum)

    with SignalStop(stop, at_once):  # until the end: no KeyboardInterrupt
        with RoundProgress(plan.epochs, title + " (epochs)", console) as progress:
            result = run_pooled(
                config,
                epochs=plan.epochs,
                observer=progress,
                stop=stop,
                parts=parts,
                title=title
                if parts is not None
                else "Fed-Heart-Disease, pooled reference",
            )
        if isinstance(result.error, RunInterruptedError):
            _interrupted(plan, result.error, written=result.completed_rounds > 0)
        _summary(console, result, title, config, time.perf_counter() - start)


SitesMaker = Callable[[Console, Workspace], list[PreparedSite]]
"""Runs every hospital's data path in the run's workspace (heart's or own)."""


def _federated(
    plan: HeartPlan,
    console: Console,
    stop: StopRequest,
    *,
    title: str | None = None,
    make_sites: SitesMaker | None = None,
) -> None:
    config = plan.config
    title = title or f"Fed-Heart-Disease {config.strategy}, seed {config.seed}"
    start = time.perf_counter()
    console.print(
        _privacy_line(plan.privacy, plan.backend, config.central_dp),
        highlight=False,
        soft_wrap=True,
    )
    if plan.resume is not None:
        console.print(
            f"resuming {plan.out_dir} after round {plan.done} of "
            f"{plan.resume.num_rounds}, to round {config.num_rounds}",
            highlight=False,
            soft_wrap=True,
        )
    progress = RoundProgress(config.num_rounds, title, console, completed=plan.done)
    workspace = Workspace.create()  # removed below on every way out

    def at_once(signum: int) -> None:
        workspace.remove()  # the run's processes first, then keys and data
        _exit_at_once(
            f"stopped at once ({signal_name(signum)} again) "
            + _kept(plan, progress.last_round),
            signum,
        )

    signals = SignalStop(stop, at_once)
    signals.install()
    early: RunInterruptedError | None = None
    try:
        if make_sites is None:
            sites = _prepare(console, workspace, config.seed, plan.state_dir)
        else:
            sites = make_sites(console, workspace)
        state_dir = plan.state_dir
        if plan.privacy is not None and state_dir is None:
            state_dir = workspace.state_dir
        nodes = heart_nodes(
            sites,
            plan.backend,
            privacy=plan.privacy,
            state_dir=state_dir,
            input_sums=plan.input_sums,
        )
        with progress:
            result = run_federated(
                config,
                nodes=nodes,
                observer=progress,
                on_stage=progress.on_stage,
                verbose=plan.verbose,
                stop=stop,
                resume=plan.resume,
                settings=plan.settings,
            )
    except RunInterruptedError as exc:  # asked before Ray was up
        early = exc
    finally:
        workspace.remove()
    if early is not None:
        _interrupted(plan, early, written=False)
    if isinstance(result.error, RunInterruptedError):
        _interrupted(plan, result.error, written=result.completed_rounds > 0)
    if result.error is not None:
        _failed(plan, result)
    _summary(console, result, title, config, time.perf_counter() - start)
    signals.restore()


def _kept(plan: HeartPlan, completed: int) -> str:
    """What the results directory keeps, and how to go on."""
    unit, total = (
        ("epoch", plan.epochs) if plan.pooled else ("round", plan.config.num_rounds)
    )
    if completed == 0:
        return f"before {unit} 1 of {total} completed; nothing was written"
    where = f"after {unit} {completed} of {total}; results so far in {plan.out_dir}"
    if plan.pooled:
        return where
    if not plan.can_resume:
        return f"{where} (this command does not resume: start it again)"
    if not plan.resumable:
        return (
            f"{where} (not resumable: the hospitals' privacy ledgers were "
            "temporary; use --state-dir to make a private run resumable)"
        )
    return f"{where} (resume with --resume {plan.out_dir})"


def _interrupted(plan: HeartPlan, error: RunInterruptedError, *, written: bool) -> None:
    completed = error.completed_rounds if written or plan.resume else 0
    print(f"{PROG}: interrupted {_kept(plan, completed)}", file=sys.stderr, flush=True)
    raise typer.Exit(error.exit_code)


def _failed(plan: HeartPlan, result: RunResult) -> None:
    assert result.error is not None
    message = str(result.error)
    if result.completed_rounds:
        message += (
            f"; results of rounds 1-{result.completed_rounds} are in {plan.out_dir}"
        )
        if plan.resumable:
            message += f" (resume with --resume {plan.out_dir})"
    else:
        message += f"; the reason is recorded in {plan.out_dir}/metrics.json"
    error = HospfedError(message)
    error.exit_code = result.error.exit_code
    raise error


def _exit_at_once(what: str, signum: int) -> None:
    """Print one line and end the process now (from a signal handler)."""
    try:
        print(f"{PROG}: {what}", file=sys.stderr, flush=True)
    finally:
        os._exit(128 + signum)


def _prepare(
    console: Console, workspace: Workspace, seed: int, state_dir: Path | None
) -> list[PreparedSite]:
    start = time.perf_counter()
    sites = prepare_sites(workspace, seed=seed, state_dir=state_dir)
    console.print(
        f"prepared {len(sites)} hospitals: synthetic raw exports -> de-identified "
        f"-> encrypted datasets ({time.perf_counter() - start:.1f} s); each "
        "hospital trains only on its encrypted file",
        highlight=False,
        soft_wrap=True,
    )
    return sites


def _privacy_line(
    privacy: PrivacySettings | None, backend: str, central: CentralDpSettings | None
) -> str:
    text = f"backend {backend}; every hospital: {privacy.describe()}" if privacy else ""
    if privacy is None and central is None:
        return (
            f"backend {backend}; NON-PRIVATE: no differential privacy, the model "
            "updates are not protected (pass --epsilon to train with DP-SGD)"
        )
    if privacy is None:
        text = (
            f"backend {backend}; no record-level DP at the hospitals (pass "
            "--epsilon to train with DP-SGD)"
        )
    if central is not None:
        text += (
            f"; client-level central DP: {central.mechanism} clipping of each "
            f"hospital's update to {central.clipping_norm:g}, noise multiplier "
            f"{central.noise_multiplier:g} added by the coordinator, every "
            "hospital weighs 1"
        )
    return text


def _summary(
    console: Console, result: RunResult, title: str, config: RunConfig, wall: float
) -> None:
    final = result.history.final()
    if final is None:
        return
    console.print(_final_table(final, title))
    epsilon = final.max_epsilon()
    if epsilon is not None:
        console.print(f"privacy: max epsilon spent {epsilon:.3f}", highlight=False)
    central = final.central_epsilon()
    if central is not None:
        console.print(f"privacy: central epsilon {central:.3f}", highlight=False)
    console.print(
        f"results: {config.out_dir}  (wall time {wall:.1f} s)",
        highlight=False,
        soft_wrap=True,
    )


def _final_table(final: RoundRecord, title: str) -> Table:
    """Every hospital's final scores (the label kind's metrics) and their means.

    The set scored is named (test, or the validation rows held out of the
    training rows). With personalisation each metric has two columns: the
    global model's and, labelled ``personalised``, the model each hospital
    adapted on its own data, scored on the same rows. Above
    :data:`LISTED_HOSPITALS` hospitals only the means (every hospital's
    scores are in metrics.json).
    """
    personal = bool(final.personalised)
    metrics = KIND_METRICS[final.kind()][: 2 if personal else 3]  # fits 80 columns
    table = Table(title=f"{title}: final local {final.split} metrics")
    columns = ["hospital", "rows"]
    for m in metrics:
        label = METRIC_LABELS[m]
        columns += [label, f"personalised {label}"] if personal else [label]
    for column in columns:
        table.add_column(column, justify="right" if column != "hospital" else "left")
    rows = sorted(final.evaluate.items(), key=_hospital_order)
    if len(rows) > LISTED_HOSPITALS:
        table.caption = f"{len(rows)} hospitals: each one's scores are in metrics.json"
        rows = []
    for hospital, scores in rows:
        adapted = final.personalised.get(hospital, {})
        table.add_row(
            hospital,
            f"{scores['num_examples']:.0f}",
            *_cells(metrics, scores, adapted if personal else None),
        )
    for label, summary, adapted_summary in (
        ("mean", final.mean(), final.mean(personalised=True)),
        ("weighted", final.weighted(), final.weighted(personalised=True)),
    ):
        table.add_row(
            label, "", *_cells(metrics, summary, adapted_summary if personal else None)
        )
    return table


def _cells(
    metrics: Sequence[str],
    scores: Mapping[str, float],
    adapted: Mapping[str, float] | None,
) -> list[str]:
    cells = []
    for m in metrics:
        cells.append(f"{scores.get(m, math.nan):.3f}")
        if adapted is not None:
            cells.append(f"{adapted.get(m, math.nan):.3f}")
    return cells


def _hospital_order(item: tuple[str, object]) -> tuple[int, str]:
    name = item[0]
    return (HOSPITALS.index(name) if name in HOSPITALS else len(HOSPITALS), name)


app.command("run")(run_command)
app.command("tune")(tune_command)


def main(argv: list[str] | None = None) -> None:
    """Console entry point of ``hospfed-sim``.

    If a thread of Flower's runtime is still waiting when the command is
    done (a run that ended abnormally), the process exits without waiting
    for it: the results are written and Ray is shut down by then.
    """
    code = run_app(app, PROG, argv)
    if any(t.is_alive() and not t.daemon for t in threading.enumerate()[1:]):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
