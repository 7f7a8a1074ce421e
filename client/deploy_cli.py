"""``hospfed-client node-key`` and ``hospfed-client start``: joining a consortium.

The commands a hospital's IT team runs: ``node-key`` once (send
``node.pub`` to the coordinator), then ``start``, left running (a systemd
unit in the README). See :mod:`hospfed.client.node`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from hospfed.client.data import NodeSettings
from hospfed.client.node import NodeOptions, run_node
from hospfed.client.nodekey import make_node_key
from hospfed.client.privacy import PrivacySettings
from hospfed.common.errors import ConfigError


def node_key(
    out: Annotated[
        Path, typer.Option(help="Directory for node.key (0600) and node.pub.")
    ],
    name: Annotated[
        str, typer.Option(help="Comment on the public key (your hospital).")
    ] = "",
) -> None:
    """Create this hospital's node key pair (never replaces one)."""
    private, public = make_node_key(out, name)
    print(f"wrote {private} (private, 0600) and {public}")
    print(f"send {public} to the coordinator: hospfed-server admit NAME node.pub")


def start(
    server: Annotated[str, typer.Option(help="The coordinator, HOST:PORT.")],
    data: Annotated[Path, typer.Option(help="Prepared dataset (.hfd).")],
    state: Annotated[
        Path, typer.Option(help="State directory (ledger, audit log, log).")
    ],
    ca: Annotated[
        Path | None, typer.Option(help="The coordinator's CA certificate.")
    ] = None,
    node_key: Annotated[
        Path | None, typer.Option(help="This hospital's node.key.")
    ] = None,
    key: Annotated[
        Path | None, typer.Option(help="Key file that opens --data.")
    ] = None,
    passphrase_env: Annotated[
        str | None, typer.Option(help="Or: environment variable with the passphrase.")
    ] = None,
    hospital: Annotated[
        str, typer.Option(help="Name reported (default: file stem).")
    ] = "",
    backend: Annotated[str, typer.Option(help="keras or torch.")] = "keras",
    epsilon: Annotated[
        float | None, typer.Option(help="DP-SGD: this hospital's epsilon budget.")
    ] = None,
    delta: Annotated[float, typer.Option(help="DP-SGD delta.")] = 1e-3,
    clip_norm: Annotated[float, typer.Option(help="DP-SGD clipping norm.")] = 1.0,
    dp_rounds: Annotated[int, typer.Option(help="Rounds the budget must last.")] = 15,
    insecure: Annotated[
        bool, typer.Option(help="No TLS, no node key: local trials only.")
    ] = False,
    warm: Annotated[
        bool,
        typer.Option(
            help="Keep the model and the decrypted data in this process between "
            "messages (--no-warm: Flower's fresh process per message loads both)."
        ),
    ] = True,
    idle_evict: Annotated[
        float,
        typer.Option(help="Seconds without a message before the data is dropped."),
    ] = 600.0,
    allow_input_sums: Annotated[
        bool,
        typer.Option(
            "--allow-input-sums",
            help="Answer the coordinator's query for sums over the training "
            "inputs (a task that standardises by federation); off: refused.",
        ),
    ] = False,
) -> int:
    """Run this hospital's process: dial out to the coordinator, train when asked."""
    if backend not in ("keras", "torch"):
        raise ConfigError(f"--backend {backend!r}: use keras or torch")
    privacy = None
    if epsilon is not None:
        privacy = PrivacySettings.from_mapping(
            {
                "epsilon": epsilon,
                "delta": delta,
                "clip-norm": clip_norm,
                "dp-rounds": dp_rounds,
            }
        )
    state = state.expanduser().absolute()
    settings = NodeSettings(
        hospital=hospital.lower() or data.stem,
        data=data.expanduser().absolute(),
        key_file=key.expanduser().absolute() if key else None,
        passphrase_env=passphrase_env,
        backend=backend,
        privacy=privacy,
        state_dir=state,
        input_sums=allow_input_sums,
    )
    options = NodeOptions(
        server=server,
        ca=ca.expanduser().absolute() if ca else None,
        node_key=node_key.expanduser().absolute() if node_key else None,
        settings=settings,
        insecure=insecure,
        warm=warm,
        idle_seconds=idle_evict,
    )
    if insecure:
        print(
            "hospfed-client: WARNING: --insecure: no TLS, no node authentication",
            file=sys.stderr,
        )
    return run_node(options, state)


def register(app: typer.Typer) -> None:
    """Add ``node-key`` and ``start`` to ``hospfed-client``."""
    app.command("node-key")(node_key)
    app.command("start")(start)
