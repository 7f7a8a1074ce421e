"""Talking to the daemon's SuperLink: Flower's ``flwr`` CLI, on loopback only.

This module owns every call the coordinator's commands make to the
Control API (``admit``, ``revoke``, ``hospitals``, ``run``, ``status``):
each runs ``flwr ... --format json`` with ``FLWR_HOME`` in the daemon's
state directory, whose ``config.toml`` names the SuperLink at
``127.0.0.1:PORT`` with the coordinator's CA (:func:`write_flwr_home`).
The Control API is never reachable from the network (see
:mod:`hospfed.server.front`), so these commands run on the coordinator's
machine. ``flwr``'s own exit code is not trusted for runs (``flwr run
--stream`` exits 0 when the ServerApp fails): a run's outcome is read from
``flwr ls --run-id ID`` (:func:`run_status`).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hospfed.common.daemons import flower_env, flower_pairs
from hospfed.common.errors import ConfigError, HospfedError

FEDERATION = "hospfed"
"""The name of the daemon's SuperLink in ``$FLWR_HOME/config.toml``."""


class ControlError(HospfedError):
    """A Control API call failed (the daemon is down, or Flower said no)."""

    exit_code = 1


@dataclass(frozen=True)
class Control:
    """The ``flwr`` CLI bound to one daemon's state directory.

    Attributes
    ----------
    flwr_home : Path
        ``$FLWR_HOME`` (holds ``config.toml``).

    """

    flwr_home: Path

    def call(self, *args: str, timeout: float = 120.0) -> dict[str, Any]:
        """Run ``flwr ARGS --format json`` and return its JSON answer.

        Raises
        ------
        ControlError
            If it fails or answers ``"success": false``.

        """
        argv = ["flwr", *args, "--format", "json"]
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=flower_env({"FLWR_HOME": str(self.flwr_home)}),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ControlError(
                f"`flwr {args[0]}` did not answer within {timeout:.0f} s: "
                "is `hospfed-server start` running?"
            ) from exc
        answer = _json_answer(done.stdout)
        if answer is None or not answer.get("success", False):
            detail = (answer or {}).get("error-message") or done.stderr or done.stdout
            detail = " ".join(str(detail).split())[:400]
            if "unavailable" in detail.lower():
                detail += " (is `hospfed-server start` running with this --state?)"
            raise ControlError(f"`flwr {' '.join(args[:2])}` failed: {detail}")
        return answer

    def register(self, public_key: Path, name: str) -> str:
        """Register a node key; return the node id Flower gave it."""
        answer = self.call(
            "supernode", "register", str(public_key), FEDERATION, "--name", name
        )
        return str(answer["node-id"])

    def unregister(self, node_id: str) -> None:
        """Unregister a node (its key can no longer connect)."""
        self.call("supernode", "unregister", node_id, FEDERATION)

    def nodes(self) -> list[dict[str, Any]]:
        """Every node the SuperLink knows, as ``flwr supernode list`` gives them."""
        return list(self.call("supernode", "list", FEDERATION)["nodes"])

    def start_run(self, app: Path, run_config: dict[str, str]) -> str:
        """Submit a run of the app in ``app``; return its run id."""
        pairs = flower_pairs(dict(run_config), flag="run config")
        answer = self.call("run", str(app), FEDERATION, "--run-config", pairs)
        return str(answer["run-id"])

    def runs(self) -> list[dict[str, Any]]:
        """Every run, as ``flwr ls`` gives them."""
        return list(self.call("ls", FEDERATION)["runs"])

    def run_status(self, run_id: str) -> dict[str, Any]:
        """One run as ``flwr ls --run-id`` gives it (``status``: ``finished:...``)."""
        runs = self.call("ls", FEDERATION, "--run-id", run_id)["runs"]
        if not runs:
            raise ControlError(f"run {run_id} is not known to the daemon")
        return dict(runs[0])

    def stop_run(self, run_id: str) -> None:
        """Ask the SuperLink to stop a run."""
        self.call("stop", run_id, FEDERATION)


def _json_answer(stdout: str) -> dict[str, Any] | None:
    """The JSON object ``flwr --format json`` printed (after any log lines)."""
    start = stdout.find("{")
    if start < 0:
        return None
    try:
        answer = json.loads(stdout[start:])
    except json.JSONDecodeError:
        return None
    return answer if isinstance(answer, dict) else None


def write_flwr_home(flwr_home: Path, port: int, ca: Path | None) -> None:
    """Write ``config.toml`` naming the SuperLink on ``127.0.0.1:port``.

    Parameters
    ----------
    flwr_home : Path
        ``$FLWR_HOME``; created 0700.
    port : int
        The SuperLink's loopback port.
    ca : Path or None
        The CA certificate (absolute); None for an ``--insecure`` daemon.

    """
    import tomli_w

    from hospfed.common.files import atomic_write

    if ca is not None and not ca.is_absolute():
        raise ConfigError(f"the CA path must be absolute, got {ca}")
    flwr_home.mkdir(mode=0o700, parents=True, exist_ok=True)
    link: dict[str, Any] = {"address": f"127.0.0.1:{port}"}
    if ca is None:
        link["insecure"] = True
    else:
        link["root-certificates"] = str(ca)
    text = tomli_w.dumps({"superlink": {"default": FEDERATION, FEDERATION: link}})
    atomic_write(flwr_home / "config.toml", text.encode(), mode=0o600)
