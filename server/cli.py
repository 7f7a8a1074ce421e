"""``hospfed-server``: the coordinator's command.

Today: ``config`` resolves a run configuration (``key=value`` pairs, as
Flower's ``--run-config``) with every default filled in, and refuses a bad
value with a one-line error naming the key and what is allowed.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from hospfed.common.cli import make_app, run_app
from hospfed.common.errors import ConfigError
from hospfed.server.config import RunConfig
from hospfed.server.results import describe_run

PROG = "hospfed-server"
app = make_app("The coordinator side of hospfed: the central server and training runs.")


def parse_pairs(pairs: list[str]) -> dict[str, Any]:
    """Parse ``key=value`` pairs (values stay strings; RunConfig types them)."""
    mapping: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"expected key=value, got {pair!r}")
        mapping[key.strip()] = value.strip().strip('"')
    return mapping


@app.command()
def config(
    pairs: Annotated[
        list[str] | None, typer.Argument(help="Run config as key=value pairs.")
    ] = None,
) -> None:
    """Show the resolved run configuration (defaults filled in) as JSON."""
    resolved = RunConfig.from_mapping(parse_pairs(pairs or []))
    print(json.dumps(describe_run(resolved), indent=2))


def main(argv: list[str] | None = None) -> None:
    """Console entry point of ``hospfed-server``."""
    sys.exit(run_app(app, PROG, argv))
