"""``hospfed-sim tune``: search settings on validation, then test the choice once.

See :mod:`hospfed.simulations.tune` for the protocol. Writes, in ``--out``:
``tune.json`` (every candidate's validation score per seed, the choice, and
the chosen settings' test scores per seed and hospital, global and
personalised), ``chosen.toml`` (the chosen settings as run-config keys, for
``hospfed-server run --config``), and each run's own results directory
under ``runs/``. Ctrl-C stops after the current run's round; what was
measured so far is written, marked ``interrupted``, and the command exits
130 (143 on SIGTERM).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from hospfed.client.privacy import PrivacySettings
from hospfed.common.datasets import FED_HEART_TASK, resolve_schema, resolve_task
from hospfed.common.datasets.heart import HOSPITALS
from hospfed.common.errors import ConfigError, HospfedError
from hospfed.common.files import atomic_write, check_output_dir
from hospfed.common.personal import PERSONALISE_METHODS
from hospfed.server.app import RunResult
from hospfed.server.config import STRATEGIES, RunConfig
from hospfed.server.history import METRIC_LABELS
from hospfed.server.stop import RunInterruptedError, StopRequest
from hospfed.simulations.heart import (
    SIM_BACKENDS,
    PreparedSite,
    heart_nodes,
    prepare_sites,
    run_federated,
)
from hospfed.simulations.options import explicit_flags, flag
from hospfed.simulations.signals import SignalStop, signal_name
from hospfed.simulations.sites import SiteFile, parse_sites, prepare_own_sites
from hospfed.simulations.tune import (
    Trial,
    TuneSetup,
    candidates,
    choose,
    default_grid,
    parse_grid,
    personalised_objective,
    run_config,
    score,
    summarise,
    with_validation,
)
from hospfed.simulations.tune_report import (
    final_scores,
    report_table,
    tune_report,
    write_chosen,
)
from hospfed.simulations.workspace import Workspace

__all__ = ["tune_command"]

PROG = "hospfed-sim"
SitesMaker = Callable[[Workspace], list[PreparedSite]]


def tune_command(
    ctx: typer.Context,
    grid: Annotated[
        list[str] | None,
        typer.Option(
            help="KEY=V1,V2: values to try (repeat per key). Keys: learning-rate, "
            "server-learning-rate, local-steps, proximal-mu, clip-norm (with "
            "--epsilon), personal-learning-rate, personal-steps, ditto-lambda "
            "[default: the strategy's main step size, 3 values]."
        ),
    ] = None,
    seeds: Annotated[
        str, typer.Option(help="Seeds of every candidate: 0,1,2 or 0-4.")
    ] = "0-2",
    strategy: Annotated[
        str, typer.Option(help=f"One of: {', '.join(STRATEGIES)}.")
    ] = "fedyogi",
    rounds: Annotated[int, typer.Option(min=1, help="Federated rounds.")] = 15,
    validation_fraction: Annotated[
        float,
        typer.Option(
            help="Share of each hospital's training rows held out to choose on."
        ),
    ] = 0.2,
    validation_seed: Annotated[
        int, typer.Option(min=0, help="Seed of the validation split.")
    ] = 0,
    objective: Annotated[
        str,
        typer.Option(
            help="global or personalised (with --personalise): what is compared."
        ),
    ] = "global",
    task: Annotated[
        str | None,
        typer.Option(help="The task (with --site) [default: Fed-Heart-Disease]."),
    ] = None,
    site: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=FILE per hospital (raw export, or .hfd with --key) "
            "[default: the 4 heart hospitals]."
        ),
    ] = None,
    key: Annotated[
        list[str] | None, typer.Option(help="NAME=KEYFILE of a prepared --site file.")
    ] = None,
    schema: Annotated[
        str | None, typer.Option(help="Raw-export schema of --site files.")
    ] = None,
    backend: Annotated[
        str, typer.Option(help=f"One of: {', '.join(SIM_BACKENDS)}.")
    ] = "keras",
    local_steps: Annotated[
        int, typer.Option(min=1, help="Local steps per round.")
    ] = 100,
    learning_rate: Annotated[
        float | None, typer.Option(help="Client learning rate (if not in --grid).")
    ] = None,
    server_learning_rate: Annotated[
        float | None, typer.Option(help="Server learning rate (if not in --grid).")
    ] = None,
    hidden: Annotated[str, typer.Option(help="Hidden layer widths, e.g. 64,32.")] = "",
    epsilon: Annotated[
        float | None, typer.Option(help="DP-SGD budget of every hospital, per run.")
    ] = None,
    delta: Annotated[float, typer.Option(help="DP delta (with --epsilon).")] = 1e-3,
    clip_norm: Annotated[
        float, typer.Option(help="Per-example gradient bound (if not in --grid).")
    ] = 1.0,
    personalise: Annotated[
        str,
        typer.Option(
            help=f"none, {' or '.join(PERSONALISE_METHODS)}: each hospital "
            "adapts the final model."
        ),
    ] = "none",
    personal_learning_rate: Annotated[
        float | None, typer.Option(help="Personal training's learning rate.")
    ] = None,
    personal_steps: Annotated[
        int | None, typer.Option(min=1, help="Personal training's steps.")
    ] = None,
    ditto_lambda: Annotated[
        float | None, typer.Option(help="Ditto's proximal coefficient.")
    ] = None,
    secure_aggregation: Annotated[
        bool, typer.Option(help="SecAgg+ in every run (slower; off by default).")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(help="Results directory [default: results/tune-STRATEGY]."),
    ] = None,
    verbose: Annotated[
        bool, typer.Option(help="Show Flower's and Ray's logs.")
    ] = False,
) -> None:
    """Choose settings on each hospital's validation rows; test the choice once."""
    setup, make_sites = _plan(ctx.params, explicit_flags(ctx))
    out_dir = Path(out or Path("results") / f"tune-{strategy}")
    check_output_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    console = Console()
    stop = StopRequest()

    def at_once(signum: int) -> None:
        print(f"{PROG}: stopped at once ({signal_name(signum)} again)", file=sys.stderr)
        sys.stderr.flush()
        os._exit(128 + signum)

    with SignalStop(stop, at_once) as signals:
        report = _search(
            setup, make_sites, out_dir, console, stop, signals, verbose=verbose
        )
    if report["status"] == "interrupted":
        where = out_dir / "tune.json"
        print(
            f"{PROG}: interrupted; what was measured so far is in {where}",
            file=sys.stderr,
        )
        raise typer.Exit(stop.exit_code or 130)


def parse_seeds(text: str) -> tuple[int, ...]:
    """``0,1,2`` or ``0-4`` (or a mix) as distinct seeds in order.

    Raises
    ------
    ConfigError
        For anything else.

    """
    seeds: list[int] = []
    try:
        for part in text.split(","):
            first, sep, last = part.strip().partition("-")
            span = range(int(first), int(last) + 1) if sep else [int(first)]
            seeds += [s for s in span if s not in seeds]
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: write 0,1,2 or 0-4") from None
    if not seeds or min(seeds) < 0:
        raise ConfigError(f"--seeds {text!r}: give one or more seeds >= 0")
    return tuple(seeds)


def _plan(values: dict[str, Any], explicit: set[str]) -> tuple[TuneSetup, SitesMaker]:
    """Check every flag before any work; the setup and how to make the hospitals."""
    strategy = str(values["strategy"]).strip().lower()
    grid = parse_grid(values["grid"] or ()) or default_grid(strategy)
    if values["site"]:
        if values["task"] is None:
            raise ConfigError("--site needs --task (the federation's task)")
        task = resolve_task(values["task"])
        raw = resolve_schema(values["schema"] or f"{task.schema}-raw")
        files = parse_sites(values["site"], values["key"] or ())
        make_sites = _own_sites(files, raw, task)
        hospitals = len(files)
    else:
        for name in ("key", "schema"):
            if values[name]:
                raise ConfigError(f"--{name} has no effect without --site; drop it")
        task = resolve_task(values["task"] or FED_HEART_TASK.name)
        if task.name != FED_HEART_TASK.name:
            raise ConfigError("--task other than fed-heart-disease needs --site files")
        raw = None
        make_sites = _heart_sites
        hospitals = len(HOSPITALS)
    task = with_validation(
        task, values["validation_fraction"], values["validation_seed"]
    )
    if values["epsilon"] is None:
        for name in ("delta", "clip_norm"):
            if name in explicit:
                raise ConfigError(f"{flag(name)} has no effect without --epsilon")
    base = _base_keys(values, strategy, grid)
    # every hospital in every round: a round must not start with the nodes
    # that happen to have registered (the scores would depend on timing)
    base["min-hospitals"] = hospitals
    privacy = None
    if values["epsilon"] is not None:  # each candidate's run plans its own rounds
        privacy = PrivacySettings(
            epsilon=values["epsilon"],
            delta=values["delta"],
            clip_norm=values["clip_norm"],
            planned_rounds=values["rounds"],
        )
    setup = TuneSetup(
        base=base,
        task=task,
        raw_schema=raw,
        backend=values["backend"],
        privacy=privacy,
        seeds=parse_seeds(values["seeds"]),
        grid=grid,
        objective=values["objective"],
    )
    for candidate in candidates(grid):  # every candidate's config is valid
        run_config(
            setup, candidate, seed=0, evaluate_on="validation", out_dir=Path(".")
        )
    return setup, make_sites


def _base_keys(
    values: dict[str, Any], strategy: str, grid: dict[str, Any]
) -> dict[str, Any]:
    base: dict[str, Any] = {
        "strategy": strategy,
        "num-rounds": values["rounds"],
        "local-steps": values["local_steps"],
        "model-hidden": values["hidden"],
        "secure-aggregation": bool(values["secure_aggregation"]),
        "personalise": values["personalise"],
    }
    optional = {
        "learning-rate": values["learning_rate"],
        "server-learning-rate": values["server_learning_rate"],
        "personal-learning-rate": values["personal_learning_rate"],
        "personal-steps": values["personal_steps"],
        "ditto-lambda": values["ditto_lambda"],
    }
    for name, value in optional.items():
        if value is not None and name in grid:
            raise ConfigError(f"--{name} is also in --grid; give it in one place")
        if value is not None:
            base[name] = value
    return base


def _heart_sites(workspace: Workspace) -> list[PreparedSite]:
    return prepare_sites(workspace, seed=0)


def _own_sites(files: Sequence[SiteFile], raw: Any, task: Any) -> SitesMaker:
    def make(workspace: Workspace) -> list[PreparedSite]:
        copied = []
        for given in files:
            if given.prepared:  # a fresh copy per run: fresh DP ledgers and receipts
                target = workspace.data_file(given.hospital)
                shutil.copyfile(given.path, target)
                given = SiteFile(given.hospital, target, given.key_file)  # noqa: PLW2901
            copied.append(given)
        return prepare_own_sites(workspace, schema=raw, task=task, files=copied)

    return make


def _run(
    config: RunConfig,
    privacy: PrivacySettings | None,
    setup: TuneSetup,
    make_sites: SitesMaker,
    stop: StopRequest,
    signals: SignalStop,
    *,
    verbose: bool,
) -> RunResult:
    """One fresh simulation: its own workspace, keys, datasets and ledgers."""
    with Workspace.create() as workspace:
        sites = make_sites(workspace)
        nodes = heart_nodes(
            sites,
            setup.backend,
            privacy=privacy,
            state_dir=workspace.state_dir if privacy is not None else None,
            input_sums=setup.task.standardise == "federation",
        )
        try:
            return run_federated(
                config,
                nodes=nodes,
                stop=stop,
                verbose=verbose,
                settings={"scenario": "tune", "backend": setup.backend},
            )
        finally:
            signals.install()  # Ray's init replaces SIGTERM's handler


def _search(
    setup: TuneSetup,
    make_sites: SitesMaker,
    out_dir: Path,
    console: Console,
    stop: StopRequest,
    signals: SignalStop,
    *,
    verbose: bool,
) -> dict[str, Any]:
    grid = candidates(setup.grid)
    personal = personalised_objective(setup.objective)
    metric = setup.metric
    label = METRIC_LABELS[metric]
    trials: list[Trial] = []
    finals: list[dict[str, Any]] = []
    report: dict[str, Any] = {}

    def write(status: str, chosen: int | None = None) -> None:
        report.clear()
        report.update(tune_report(setup, grid, trials, finals, status, chosen))
        atomic_write(out_dir / "tune.json", json.dumps(report, indent=2).encode())

    console.print(
        f"tuning {setup.base['strategy']}: {len(grid)} candidates x "
        f"{len(setup.seeds)} seeds on validation {label} "
        f"({setup.task.split.validation_fraction:g} of each hospital's training rows); "
        "test sets are read only by the chosen settings' final runs",
        highlight=False,
        soft_wrap=True,
    )
    try:
        for index, candidate in enumerate(grid):
            for seed in setup.seeds:
                run_dir = out_dir / "runs" / f"candidate-{index + 1}-seed-{seed}"
                config, privacy = run_config(
                    setup,
                    candidate,
                    seed=seed,
                    evaluate_on="validation",
                    out_dir=run_dir,
                )
                start = time.perf_counter()
                result = _checked(
                    _run(
                        config,
                        privacy,
                        setup,
                        make_sites,
                        stop,
                        signals,
                        verbose=verbose,
                    )
                )
                final = result.history.final()
                assert final is not None and final.split == "validation"
                value = score(final, metric, personalised=personal)
                trials.append(Trial(index, seed, value, run_dir))
                console.print(
                    f"candidate {index + 1}/{len(grid)} ({candidate.label()}), seed "
                    f"{seed}: validation {label} {value:.4f} "
                    f"({time.perf_counter() - start:.0f} s)",
                    highlight=False,
                    soft_wrap=True,
                )
                write("searching")
        chosen = choose(setup, summarise(setup, grid, trials))
        console.print(f"chosen on validation: {grid[chosen].label()}", highlight=False)
        for seed in setup.seeds:
            run_dir = out_dir / "runs" / f"chosen-seed-{seed}"
            config, privacy = run_config(
                setup,
                grid[chosen],
                seed=seed,
                evaluate_on="validation-then-test",
                out_dir=run_dir,
            )
            result = _checked(
                _run(config, privacy, setup, make_sites, stop, signals, verbose=verbose)
            )
            final = result.history.final()
            assert final is not None and final.split == "test"
            finals.append(final_scores(final, seed, metric, run_dir))
            console.print(
                f"chosen settings, seed {seed}: test {label} "
                f"{finals[-1]['global']:.4f}"
                + (
                    f", personalised {finals[-1]['personalised']:.4f}"
                    if finals[-1]["personalised"] is not None
                    else ""
                ),
                highlight=False,
            )
            write("testing", chosen)
    except RunInterruptedError:
        write("interrupted")
        return report
    except HospfedError:
        write("failed")  # what was measured stays; the error says what failed
        raise
    write("complete", chosen)
    write_chosen(out_dir, setup, grid[chosen])
    console.print(report_table(report, label))
    console.print(f"results: {out_dir}", highlight=False, soft_wrap=True)
    return report


def _checked(result: RunResult) -> RunResult:
    if isinstance(result.error, RunInterruptedError):
        raise result.error
    if result.error is not None:
        raise HospfedError(f"a tuning run failed: {result.error}")
    return result
