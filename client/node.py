"""``hospfed-client start``: the hospital's long-lived process.

This module owns how a hospital joins the consortium (:func:`run_node`):
it checks what it was given before anything connects (the dataset opens
with its key, the node key is private, the CA is there), then runs
Flower's SuperNode as a child process in its own process group, dialling
out to the coordinator over TLS with the hospital's node key
(``--auth-supernode-private-key``) and its settings as the node config
(:func:`node_config`: dataset, key, backend, DP budget, state directory).
The SuperNode opens no port to the network (its runtime API is bound to
127.0.0.1 on a free port) and reconnects by itself when the coordinator
restarts. SIGINT / SIGTERM stops the SuperNode's whole group (no orphan
app process) and exits 130 / 143; a SuperNode that exits on its own ends
this process with its exit code and the log's path.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import filelock

from hospfed.client.appguard import GUARD_DIR
from hospfed.client.data import INPUT_SUMS_KEY, NodeSettings, read_hospital_data
from hospfed.client.worker import WORKER_SOCKET_KEY, Worker
from hospfed.common.daemons import (
    Child,
    Signals,
    flower_env,
    flower_pairs,
    free_loopback_port,
)
from hospfed.common.errors import ConfigError
from hospfed.common.files import check_owner_only

LOG_NAME = "supernode.log"
LOCK_NAME = "node.lock"
_MAX_SOCKET_PATH = 100
"""Linux limits a Unix socket's path to 107 bytes."""


@dataclass(frozen=True, kw_only=True)
class NodeOptions:
    """What ``hospfed-client start`` was given.

    Attributes
    ----------
    server : str
        The coordinator's ``HOST:PORT``.
    ca : Path or None
        The coordinator's CA certificate; None only with ``insecure``.
    node_key : Path or None
        The hospital's node key (``hospfed-client node-key``).
    settings : NodeSettings
        Dataset, key, backend, DP budget and state directory.
    insecure : bool
        Plaintext, no node authentication: local trials only.
    warm : bool
        Keep the model and the decrypted data in this process between
        messages (:mod:`hospfed.client.worker`).
    idle_seconds : float
        Drop the decrypted data after this long without a message.

    """

    server: str
    ca: Path | None
    node_key: Path | None
    settings: NodeSettings
    insecure: bool = False
    warm: bool = True
    idle_seconds: float = 600.0

    def check(self) -> None:
        """Refuse missing or exposed files before anything connects."""
        host, sep, port = self.server.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"--server {self.server!r}: give HOST:PORT")
        if self.insecure:
            return
        if self.ca is None or not self.ca.is_file():
            raise ConfigError(
                f"--ca {self.ca}: the coordinator's CA certificate is missing"
            )
        if self.node_key is None or not self.node_key.is_file():
            raise ConfigError(
                f"--node-key {self.node_key}: missing; make one with "
                "`hospfed-client node-key --out DIR`; send node.pub to the coordinator"
            )
        check_owner_only(self.node_key)


def node_config(settings: NodeSettings, worker: Path | None = None) -> str:
    """The SuperNode's ``--node-config`` for these settings (TOML-quoted values)."""
    pairs: dict[str, object] = {
        "hospital": settings.hospital,
        "data": str(settings.data.absolute()),
        "backend": settings.backend,
    }
    if settings.key_file is not None:
        pairs["key-file"] = str(settings.key_file.absolute())
    if settings.passphrase_env:
        pairs["passphrase-env"] = settings.passphrase_env
    if settings.state_dir is not None:
        pairs["state-dir"] = str(settings.state_dir.absolute())
    privacy = settings.privacy
    if privacy is not None:
        pairs |= {
            "epsilon": privacy.epsilon,
            "delta": privacy.delta,
            "clip-norm": privacy.clip_norm,
            "dp-rounds": privacy.planned_rounds,
        }
        if privacy.noise_multiplier is not None:
            pairs["noise-multiplier"] = privacy.noise_multiplier
    if settings.input_sums:
        pairs[INPUT_SUMS_KEY] = "allow"
    if worker is not None:
        pairs[WORKER_SOCKET_KEY] = str(worker)
    return flower_pairs(pairs, flag="--node-config")


def supernode_argv(
    options: NodeOptions, runtime_port: int, worker: Path | None = None
) -> list[str]:
    """The SuperNode's command line."""
    argv = [
        "flower-supernode",
        "--superlink",
        options.server,
        "--port",
        str(runtime_port),
        "--node-config",
        node_config(options.settings, worker),
    ]
    if options.insecure:
        return [*argv, "--insecure"]
    return [
        *argv,
        "--root-certificates",
        str(options.ca),
        "--auth-supernode-private-key",
        str(options.node_key),
    ]


def run_node(options: NodeOptions, state_dir: Path) -> int:
    """Check everything, then run the SuperNode until a signal or its exit.

    Parameters
    ----------
    options : NodeOptions
        The hospital's settings.
    state_dir : Path
        Where the SuperNode's log goes (and the privacy ledger, the audit
        log); created 0700.

    Returns
    -------
    int
        130 / 143 after a signal; the SuperNode's exit code if it ended.

    """
    options.check()
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = filelock.FileLock(state_dir / LOCK_NAME, mode=0o600)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise ConfigError(
            f"another hospfed-client start is running on {state_dir}: one process "
            "per state directory (its ledger, audit log and worker)"
        ) from None
    try:
        return _run_locked(options, state_dir)
    finally:
        lock.release()


def _log_to_stderr() -> None:
    """The worker's events (data loaded, dropped when idle, refusals) on stderr."""
    logger = logging.getLogger("hospfed.client")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _run_locked(options: NodeOptions, state_dir: Path) -> int:
    _log_to_stderr()
    dataset = read_hospital_data(options.settings)  # fails here, not mid-run
    hospital = options.settings.hospital
    rows = len(dataset.frame)
    log = state_dir / LOG_NAME
    worker = _start_worker(options, state_dir, dataset) if options.warm else None
    del dataset
    with Signals() as signals:
        try:
            child = Child(
                "the SuperNode",
                supernode_argv(
                    options, free_loopback_port(), worker.path if worker else None
                ),
                log,
                _guarded_env(),
            )
        except BaseException:
            if worker is not None:
                _stop_worker(worker)
            raise
        print(
            f"hospfed-client: {hospital} ({rows} rows) connecting to {options.server}"
            f"{' INSECURELY' if options.insecure else ''}; log {log}",
            file=sys.stderr,
            flush=True,
        )
        try:
            while signals.received is None and child.poll() is None:
                time.sleep(0.5)
        finally:
            code = child.stop()
            if worker is not None:
                _stop_worker(worker)
    if signals.received is not None:
        print(
            f"hospfed-client: {hospital} stopped (signal {signals.received})",
            file=sys.stderr,
        )
        return signals.exit_code
    print(
        f"hospfed-client: error: the SuperNode exited with code {code}; its log: {log}",
        file=sys.stderr,
    )
    return code or 1


def _guarded_env() -> dict[str, str]:
    """Flower's environment, with the app guard first on ``PYTHONPATH``."""
    env = flower_env()
    paths = [str(GUARD_DIR), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _start_worker(options: NodeOptions, state_dir: Path, dataset: object) -> Worker:
    """Start the warm worker with the dataset already loaded and the backend imported.

    Its socket is in ``STATE/worker/`` (0700), or in a fresh private
    temporary directory when that path is too long for a Unix socket.
    """
    path = state_dir / "worker" / "sock"
    if len(str(path)) > _MAX_SOCKET_PATH:
        path = Path(tempfile.mkdtemp(prefix="hospfed-worker-")) / "sock"
    worker = Worker(options.settings, path, options.idle_seconds)
    worker.preload(dataset)
    importlib.import_module(
        f"hospfed.client.backends.{options.settings.backend}_backend"
    )
    worker.start()
    return worker


def _stop_worker(worker: Worker) -> None:
    worker.stop()
    if worker.path.parent.name.startswith("hospfed-worker-"):
        shutil.rmtree(worker.path.parent, ignore_errors=True)


__all__ = ["NodeOptions", "node_config", "run_node", "supernode_argv"]
