"""``hospfed-sim run``: a federation over the user's own data, for any task.

The hospitals come from the user's files (``--site NAME=FILE``), one table
with a site column (``--data FILE --split-by COLUMN``), one table split into
virtual hospitals (``--data FILE --hospitals N --partition ...``) or rows
drawn for the task (``--synthetic ROWS --hospitals N``); see
:mod:`~hospfed.simulations.sites`. Every hospital is prepared exactly as a
real one (key, ``prepare`` under the raw-export schema, encrypted file),
then the run goes as ``hospfed-sim heart``'s does: same strategies, DP,
secure aggregation, backends, progress, results and signals. With
``--pooled`` the same model trains on every hospital's training rows
together (the centralised reference).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hospfed.common.scaling import federation_scaling
from hospfed.common.training import HospitalData
from hospfed.server.config import DEFAULT_ROUNDS, STRATEGIES
from hospfed.server.stop import StopRequest
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
from hospfed.simulations.heart import POOLED_EPOCHS, PreparedSite, heart_nodes
from hospfed.simulations.options import explicit_flags
from hospfed.simulations.own import OwnPlan, plan_run
from hospfed.simulations.partition import PARTITIONERS
from hospfed.simulations.sites import prepare_own_sites
from hospfed.simulations.workspace import Workspace

__all__ = ["run_command"]


def run_command(
    ctx: typer.Context,
    task: Annotated[
        str, typer.Option(help="The learning task: a built-in name or a task file.")
    ],
    site: Annotated[
        list[str] | None,
        typer.Option(
            help="A hospital: NAME=FILE, a raw export (CSV/Parquet, prepared "
            "here) or a prepared .hfd (with --key). Repeat per hospital."
        ),
    ] = None,
    key: Annotated[
        list[str] | None,
        typer.Option(help="NAME=KEYFILE: the key of a prepared --site file."),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="One table of every hospital's rows (CSV/Parquet)."),
    ] = None,
    split_by: Annotated[
        str | None,
        typer.Option(help="With --data: the site column; one hospital per value."),
    ] = None,
    hospitals: Annotated[
        int | None,
        typer.Option(
            min=2, help="Virtual hospitals to split --data or --synthetic into."
        ),
    ] = None,
    partition: Annotated[
        str,
        typer.Option(
            help=f"How to split: {', '.join(PARTITIONERS)} (Flower Datasets' "
            "IID, Dirichlet label skew, linear size skew)."
        ),
    ] = "iid",
    alpha: Annotated[
        float, typer.Option(help="Dirichlet concentration (--partition dirichlet).")
    ] = 0.5,
    synthetic: Annotated[
        int | None,
        typer.Option(min=2, help="Draw this many rows for the task (no patient)."),
    ] = None,
    schema: Annotated[
        str | None,
        typer.Option(
            help="The raw-export schema hospitals prepare under (name or file) "
            "[default: the task's schema name + '-raw']."
        ),
    ] = None,
    k: Annotated[
        int | None,
        typer.Option(min=1, help="prepare's k-anonymity level [default: its own]."),
    ] = None,
    rounds: Annotated[int, typer.Option(min=1, help="Federated rounds.")] = (
        DEFAULT_ROUNDS
    ),
    strategy: Annotated[
        str, typer.Option(help=f"One of: {', '.join(STRATEGIES)}.")
    ] = "fedavg",
    seed: Annotated[
        int, typer.Option(min=0, help="Seed of weights, splits, rows.")
    ] = 0,
    out: Annotated[
        Path | None,
        typer.Option(help="Results directory [default: results/TASK-STRATEGY]."),
    ] = None,
    fraction_fit: Annotated[
        float,
        typer.Option(help="Share of hospitals sampled per round (0 < f <= 1)."),
    ] = 1.0,
    min_hospitals: Annotated[
        int | None,
        typer.Option(
            min=1, help="Fewest results a round accepts [default: all sampled]."
        ),
    ] = None,
    backend: Annotated[
        str, typer.Option(help="keras, torch or mixed (first half on Keras).")
    ] = "keras",
    learning_rate: Annotated[
        float | None,
        typer.Option(help="Client learning rate [default: the strategy's]."),
    ] = None,
    local_steps: Annotated[
        int, typer.Option(min=1, help="Local SGD steps per hospital per round.")
    ] = 100,
    hidden: Annotated[
        str, typer.Option(help="Hidden layer widths, e.g. 64,32 [default: none].")
    ] = "",
    epsilon: Annotated[
        float | None,
        typer.Option(help="DP-SGD budget of every hospital [default: no DP]."),
    ] = None,
    delta: Annotated[float, typer.Option(help="DP delta (with --epsilon).")] = 1e-3,
    clip_norm: Annotated[
        float, typer.Option(help="Per-example gradient bound (with --epsilon).")
    ] = 1.0,
    secure_aggregation: Annotated[
        bool, typer.Option(help="SecAgg+: the coordinator sees only sums.")
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
    pooled: Annotated[
        bool, typer.Option("--pooled", help="Train centrally on the pooled data.")
    ] = False,
    epochs: Annotated[
        int, typer.Option(min=1, help="Epochs of the --pooled reference.")
    ] = POOLED_EPOCHS,
    verbose: Annotated[
        bool, typer.Option(help="Show Flower's and Ray's logs.")
    ] = False,
) -> None:
    """A federation over your own data: any task, your files or virtual hospitals."""
    from hospfed.simulations import cli

    explicit = explicit_flags(ctx)
    plan = plan_run(ctx.params, explicit)
    console = Console()
    stop = StopRequest()
    config = plan.run.config
    title = f"{plan.title}, {'pooled' if pooled else config.strategy}, seed {seed}"
    if pooled:
        cli._pooled(plan.run, console, stop, title=title, parts=_pooled_parts(plan))
        return

    def make_sites(console: Console, workspace: Workspace) -> list[PreparedSite]:
        return _prepare(plan, console, workspace)

    cli._federated(plan.run, console, stop, title=title, make_sites=make_sites)


def _prepare(
    plan: OwnPlan, console: Console, workspace: Workspace
) -> list[PreparedSite]:
    start = time.perf_counter()
    sites = prepare_own_sites(
        workspace,
        schema=plan.schema,
        task=plan.task,
        files=plan.files,
        frames=plan.frames,
        k=plan.k,
    )
    console.print(
        f"prepared {len(sites)} hospitals under schema {plan.schema.name!r} -> "
        f"encrypted datasets ({time.perf_counter() - start:.1f} s); each hospital "
        "trains only on its encrypted file",
        highlight=False,
        soft_wrap=True,
    )
    return sites


def _pooled_parts(plan: OwnPlan) -> list[HospitalData]:
    """Every hospital's model inputs, prepared as for the federation."""
    from hospfed.client.data import read_hospital_data

    with Workspace.create() as workspace:
        sites = _prepare(plan, Console(), workspace)
        datasets = [read_hospital_data(node) for node in heart_nodes(sites)]
    scaling = None
    if plan.task.standardise == "federation":  # the pooled training inputs' own
        ordered = sorted(datasets, key=lambda d: d.hospital)
        scaling = federation_scaling(d.input_sums(plan.task) for d in ordered)
    return [d.inputs(plan.task, scaling) for d in datasets]
