"""``hospfed-client``: the hospital side's command.

Today: ``hospitals`` lists the embedded Fed-Heart-Disease hospitals, and
``check`` loads a hospital's data the way the training client will (schema
contract, FLamby protocol) and prints its shape and label balance, never a
patient value.
"""

from __future__ import annotations

import sys
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from hospfed.client.data import NodeSettings, load_hospital_data
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


def main(argv: list[str] | None = None) -> None:
    """Console entry point of ``hospfed-client``."""
    sys.exit(run_app(app, PROG, argv))
