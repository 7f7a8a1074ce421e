"""``hospfed-server``: the coordinator's command.

``config`` resolves a run configuration (``key=value`` pairs, as Flower's
``--run-config``) with every default filled in, and refuses a bad value
with a one-line error naming the key and what is allowed. The deployment
commands: ``certs`` (the CA and server certificate), ``start`` (the daemon,
:mod:`hospfed.server.daemon`), ``admit`` / ``revoke`` / ``hospitals`` (the
register, :mod:`hospfed.server.hospitals`), ``run`` (submit and follow a
run, :mod:`hospfed.server.runs`) and ``status``.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
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


StateOption = Annotated[
    Path, typer.Option(help="The daemon's state directory (as given to start).")
]


@app.command()
def certs(
    out: Annotated[Path, typer.Option(help="Directory for the CA and server files.")],
    host: Annotated[
        list[str], typer.Option(help="A name or address hospitals dial (repeat).")
    ],
) -> None:
    """Create the consortium's CA and the server certificate (keys 0600)."""
    from hospfed.server.certs import describe, make_certs

    paths = make_certs(out, host)
    info = describe(paths)
    print(f"wrote {paths.ca} (give it to every hospital), {paths.server} and keys")
    print(f"server certificate for {', '.join(map(str, info['names']))}")


@app.command()
def start(
    state: StateOption,
    certs: Annotated[
        Path | None, typer.Option(help="Directory from `hospfed-server certs`.")
    ] = None,
    host: Annotated[str, typer.Option(help="Public address to listen on.")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="Public port (the Fleet API only).")] = 9092,
    insecure: Annotated[
        bool, typer.Option(help="No TLS, no node authentication: local trials only.")
    ] = False,
) -> int:
    """Run the coordinator daemon in the foreground (stop with SIGTERM)."""
    from hospfed.server.certs import CertPaths
    from hospfed.server.daemon import StateDir, serve

    if insecure == (certs is not None):
        raise ConfigError(
            "give --certs DIR, or --insecure for a local trial (not both)"
        )
    if insecure:
        print(
            "hospfed-server: WARNING: --insecure: plaintext, and ANY machine that "
            "reaches the port can join as a hospital; never use it with real data",
            file=sys.stderr,
        )
    paths = CertPaths.of(certs) if certs is not None else None
    return serve(StateDir.at(state), paths, host, port)


@app.command()
def admit(
    name: Annotated[str, typer.Argument(help="The hospital's name.")],
    public_key: Annotated[Path, typer.Argument(help="Its node.pub.")],
    state: StateOption,
) -> None:
    """Admit a hospital: its node key may connect from now on."""
    from hospfed.server.daemon import StateDir
    from hospfed.server.hospitals import admit as admit_hospital

    entry = admit_hospital(StateDir.at(state), name, public_key)
    print(f"admitted {name}: node {entry['node_id']}, key {entry['fingerprint']}")


@app.command()
def revoke(
    name: Annotated[str, typer.Argument(help="The hospital's name.")],
    state: StateOption,
) -> None:
    """Revoke a hospital: its node key can no longer connect."""
    from hospfed.server.daemon import StateDir
    from hospfed.server.hospitals import revoke as revoke_hospital

    revoke_hospital(StateDir.at(state), name)
    print(f"revoked {name}")


@app.command()
def hospitals(state: StateOption) -> None:
    """The admitted hospitals: status, last seen, key fingerprint (JSON)."""
    from hospfed.server.daemon import StateDir
    from hospfed.server.hospitals import listing

    print(json.dumps(listing(StateDir.at(state)), indent=2))


@app.command()
def run(
    state: StateOption,
    pairs: Annotated[
        list[str] | None, typer.Argument(help="Run config as key=value pairs.")
    ] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="Run config as a TOML table.")
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue a stopped run (STATE/runs/RUN) from its checkpoint."
        ),
    ] = None,
) -> int:
    """Submit a training run to the daemon; print each round; fail if it fails."""
    from hospfed.server.daemon import StateDir
    from hospfed.server.runs import submit_and_follow

    given: dict[str, Any] = {}
    if config_file is not None:
        try:
            given = {
                k: str(v) for k, v in tomllib.loads(config_file.read_text()).items()
            }
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_file}: not valid TOML ({exc})") from exc
    given |= parse_pairs(pairs or [])
    return submit_and_follow(StateDir.at(state), given, resume=resume)


@app.command()
def status(state: StateOption) -> None:
    """The daemon, its hospitals and its runs (JSON)."""
    from hospfed.server.daemon import StateDir, read_info
    from hospfed.server.hospitals import listing

    where = StateDir.at(state)
    info = read_info(where)
    report: dict[str, Any] = {"daemon": info or "not running"}
    if info is not None:
        report["hospitals"] = listing(where)
        report["runs"] = [
            {k: r.get(k) for k in ("run-id", "status", "status-details", "elapsed")}
            for r in where.control().runs()
        ]
    print(json.dumps(report, indent=2))


def main(argv: list[str] | None = None) -> None:
    """Console entry point of ``hospfed-server``."""
    sys.exit(run_app(app, PROG, argv))
