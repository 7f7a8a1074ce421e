"""``hospfed-sim``: run virtual hospitals on this machine.

``hospfed-sim heart`` runs the four-hospital Fed-Heart-Disease federation
end to end and writes a results directory (metrics.json, model.npz,
curves.png); ``--pooled`` trains the same model on the pooled data instead.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hospfed.client.privacy import PrivacySettings
from hospfed.common.cli import make_app, run_app
from hospfed.common.datasets.heart import HOSPITALS
from hospfed.common.errors import ConfigError
from hospfed.common.files import check_output_dir
from hospfed.server.app import RunResult
from hospfed.server.config import DEFAULT_ROUNDS, STRATEGIES, RunConfig
from hospfed.simulations.heart import (
    POOLED_EPOCHS,
    SIM_BACKENDS,
    PreparedSite,
    heart_nodes,
    prepare_sites,
    run_federated,
    run_pooled,
)
from hospfed.simulations.progress import RoundProgress

PROG = "hospfed-sim"
app = make_app("Run many virtual hospitals on one machine (research and demo).")


@app.command()
def heart(
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
            help="Keep the hospitals' privacy ledgers here across runs "
            "[default: a temporary directory, removed after the run]."
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option(help="Show Flower's and Ray's logs.")
    ] = False,
) -> None:
    """Fed-Heart-Disease: 4 real hospitals (Cleveland, Hungary, Switzerland, VA)."""
    name = "pooled" if pooled else strategy.strip().lower()
    privacy = (
        None
        if epsilon is None
        else PrivacySettings(
            epsilon=epsilon, delta=delta, clip_norm=clip_norm, planned_rounds=rounds
        )
    )
    config = RunConfig.from_mapping(
        {
            "num-rounds": rounds,
            "strategy": strategy,
            "seed": seed,
            "min-hospitals": min_hospitals,
            "out-dir": str(out or Path("results") / f"heart-{name}"),
        }
    )
    if config.out_dir is not None:
        check_output_dir(config.out_dir)
    if pooled and (epsilon is not None or backend != "keras"):
        raise ConfigError("--pooled is the non-private Keras reference")
    console = Console()
    title = f"Fed-Heart-Disease {name}, seed {seed}"
    start = time.perf_counter()
    if pooled:
        with RoundProgress(epochs, title + " (epochs)", console) as progress:
            result = run_pooled(config, epochs=epochs, observer=progress)
        _summary(console, result, title, config, time.perf_counter() - start)
        return
    console.print(_privacy_line(privacy, backend), highlight=False, soft_wrap=True)
    with tempfile.TemporaryDirectory(prefix="hospfed-sites-") as work:
        if privacy is not None and state_dir is None:
            state_dir = Path(work) / "state"
        sites = _prepare(console, Path(work), seed)
        nodes = heart_nodes(sites, backend, privacy=privacy, state_dir=state_dir)
        with RoundProgress(config.num_rounds, title, console) as progress:
            result = run_federated(
                config, nodes=nodes, observer=progress, verbose=verbose
            )
    _summary(console, result, title, config, time.perf_counter() - start)


def _prepare(console: Console, work: Path, seed: int) -> list[PreparedSite]:
    start = time.perf_counter()
    sites = prepare_sites(work, seed=seed)
    console.print(
        f"prepared {len(sites)} hospitals: synthetic raw exports -> de-identified "
        f"-> encrypted datasets ({time.perf_counter() - start:.1f} s); each "
        "hospital trains only on its encrypted file",
        highlight=False,
        soft_wrap=True,
    )
    return sites


def _privacy_line(privacy: PrivacySettings | None, backend: str) -> str:
    if privacy is None:
        return (
            f"backend {backend}; NON-PRIVATE: no differential privacy, the model "
            "updates are not protected (pass --epsilon to train with DP-SGD)"
        )
    return f"backend {backend}; every hospital: {privacy.describe()}"


def _summary(
    console: Console, result: RunResult, title: str, config: RunConfig, wall: float
) -> None:
    final = result.history.final()
    if final is None:
        return
    table = Table(title=f"{title}: final local test metrics")
    for column in ("hospital", "test rows", "accuracy", "ROC AUC", "loss"):
        table.add_column(column, justify="right" if column != "hospital" else "left")
    for hospital, metrics in sorted(final.evaluate.items(), key=_hospital_order):
        table.add_row(
            hospital,
            f"{metrics['num_examples']:.0f}",
            *(f"{metrics[m]:.3f}" for m in ("accuracy", "auc", "loss")),
        )
    for label, summary in (("mean", final.mean()), ("weighted", final.weighted())):
        table.add_row(
            label, "", *(f"{summary[m]:.3f}" for m in ("accuracy", "auc", "loss"))
        )
    console.print(table)
    epsilon = final.max_epsilon()
    if epsilon is not None:
        console.print(f"privacy: max epsilon spent {epsilon:.3f}", highlight=False)
    console.print(
        f"results: {config.out_dir}  (wall time {wall:.1f} s)",
        highlight=False,
        soft_wrap=True,
    )


def _hospital_order(item: tuple[str, object]) -> int:
    return HOSPITALS.index(item[0]) if item[0] in HOSPITALS else len(HOSPITALS)


def main(argv: list[str] | None = None) -> None:
    """Console entry point of ``hospfed-sim``."""
    sys.exit(run_app(app, PROG, argv))
