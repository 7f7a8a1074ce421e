"""``hospfed-client``: the hospital side's command.

``hospitals`` lists the embedded Fed-Heart-Disease hospitals; ``check``
loads a hospital's data the way the training client will (schema contract,
FLamby protocol) and prints its shape and label balance, never a patient
value; ``budget`` prints the privacy budget spent and remaining, from the
hospital's ledger.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from hospfed.client.data import NodeSettings, load_hospital_data
from hospfed.client.ledger import load_ledger
from hospfed.common.cli import make_app, run_app
from hospfed.common.heart import HOSPITALS

PROG = "hospfed-client"
app = make_app("The hospital side of hospfed: runs next to the hospital's data.")


@app.command()
def hospitals() -> None:
    """List the hospitals of the embedded Fed-Heart-Disease federation."""
    for name in HOSPITALS:
        print(name)


@app.command()
def check(
    hospital: Annotated[str, typer.Option(help=f"One of: {', '.join(HOSPITALS)}.")],
    backend: Annotated[str, typer.Option(help="Training backend.")] = "keras",
) -> None:
    """Load a hospital's data as training would; print counts only."""
    settings = NodeSettings.from_mapping({"hospital": hospital, "backend": backend})
    data = load_hospital_data(settings)
    table = Table(title=f"{data.hospital}: prepared data (no patient values shown)")
    for column in ("split", "rows", "features", "label 1 share"):
        table.add_column(column)
    for split, x, y in (
        ("train", data.x_train, data.y_train),
        ("test", data.x_test, data.y_test),
    ):
        table.add_row(split, str(len(y)), str(x.shape[1]), f"{float(np.mean(y)):.2f}")
    Console().print(table)


@app.command()
def budget(
    state_dir: Annotated[
        Path,
        typer.Option(help="The client's state directory (node config 'state-dir')."),
    ],
) -> None:
    """Print the privacy budget spent and remaining, from the ledger."""
    ledger = load_ledger(state_dir)
    spent = ledger.spent()
    runs = sorted({entry.run for entry in ledger.entries})
    table = Table(title=f"privacy budget ({ledger.path})")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("epsilon spent", f"{spent:.4f}")
    table.add_row("epsilon budget", f"{ledger.epsilon_budget:g}")
    table.add_row("epsilon remaining", f"{ledger.remaining():.4f}")
    table.add_row("delta", f"{ledger.delta:g}")
    table.add_row("DP rounds recorded", str(len(ledger.entries)))
    table.add_row("runs", str(len(runs)))
    if ledger.entries:
        last = ledger.entries[-1]
        when = datetime.fromtimestamp(last.recorded_at, UTC).isoformat(
            timespec="seconds"
        )
        table.add_row("last round", f"{last.run} round {last.server_round} ({when})")
        table.add_row(
            "noise multiplier (last)", f"{last.mechanism.noise_multiplier:.4g}"
        )
        table.add_row("clip norm (last)", f"{last.clip_norm:g}")
    table.add_row("accountant", "RDP (Opacus's analysis), Poisson-sampled Gaussian")
    Console().print(table)


def main(argv: list[str] | None = None) -> None:
    """Console entry point of ``hospfed-client``."""
    sys.exit(run_app(app, PROG, argv))
