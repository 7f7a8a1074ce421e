"""``hospfed-server start``: the coordinator daemon.

This module owns the daemon's state directory (:class:`StateDir`) and its
life (:func:`serve`): Flower's SuperLink as a child process bound to
127.0.0.1 on a free port, with TLS, node authentication (only admitted
hospitals connect), a persistent database and no runtime dependency
installation; and, on the public address, the Fleet-only TLS front of
:mod:`hospfed.server.front`, served by uvicorn in this process. SIGINT or
SIGTERM stops the front, then the SuperLink's process group, and exits 130
or 143; a SuperLink that dies on its own ends the daemon with exit 1 and
the path of its log. One daemon per state directory (a lock).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import filelock

from hospfed.common.daemons import (
    Child,
    Signals,
    flower_env,
    free_loopback_port,
    wait_for_port,
)
from hospfed.common.errors import ConfigError
from hospfed.common.files import atomic_write
from hospfed.server.certs import CertPaths
from hospfed.server.config import RUN_CONFIG_KEYS
from hospfed.server.control import Control, write_flwr_home
from hospfed.server.front import Upstream, make_front

RESUME_KEY = "resume"
"""Run-config key of a deployed run only: continue ``out-dir`` from its checkpoint."""
APP_PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "hospfed-run"
version = "1.0.0"
description = "A hospfed training run (the code is the installed hospfed package)"
license = "Apache-2.0"
dependencies = []

[tool.flwr.app]
publisher = "hospfed"

[tool.flwr.app.components]
serverapp = "hospfed.server.app:app"
clientapp = "hospfed.client.app:app"

[tool.flwr.app.config]
"""
"""The Flower app a run submits: components only, the code is installed.

Every run-config key defaults to "" (unset: hospfed's own default applies);
Flower refuses a run config naming a key the app does not declare."""


@dataclass(frozen=True)
class StateDir:
    """The daemon's state directory: what lives where.

    Attributes
    ----------
    root : Path
        The directory (absolute).

    """

    root: Path

    @classmethod
    def at(cls, path: Path) -> StateDir:
        """The state directory at ``path`` (made absolute)."""
        return cls(path.expanduser().absolute())

    def __getattr__(self, name: str) -> Path:
        files = {
            "info": "daemon.json",
            "lock": "daemon.lock",
            "database": "superlink.db",
            "superlink_log": "superlink.log",
            "flwr_home": "flwr",
            "app": "app",
            "runs": "runs",
            "hospitals": "hospitals.json",
        }
        if name not in files:
            raise AttributeError(name)
        return self.root / files[name]

    def control(self) -> Control:
        """The ``flwr`` CLI bound to this daemon; ConfigError if it never ran."""
        if not (self.flwr_home / "config.toml").is_file():
            raise ConfigError(
                f"{self.root} is not a daemon's state directory: start one with "
                f"`hospfed-server start --state {self.root} --certs DIR`"
            )
        return Control(self.flwr_home)

    def prepare(self) -> None:
        """Create the directory (0700) and the app the runs submit."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.app.mkdir(mode=0o700, exist_ok=True)
        self.runs.mkdir(mode=0o700, exist_ok=True)
        keys = (*RUN_CONFIG_KEYS, RESUME_KEY)
        config = "".join(f'{key} = ""\n' for key in keys)
        atomic_write(self.app / "pyproject.toml", (APP_PYPROJECT + config).encode())


def superlink_argv(state: StateDir, port: int, certs: CertPaths | None) -> list[str]:
    """The SuperLink's command: loopback, TLS and node authentication."""
    argv = [
        "flower-superlink",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--database",
        str(state.database),
        "--disable-runtime-dependency-installation",
    ]
    if certs is None:
        return [*argv, "--insecure"]
    return [
        *argv,
        "--ssl-ca-certfile",
        str(certs.ca),
        "--ssl-certfile",
        str(certs.server),
        "--ssl-keyfile",
        str(certs.server_key),
        "--enable-supernode-auth",
    ]


def serve(state: StateDir, certs: CertPaths | None, host: str, port: int) -> int:
    """Run the daemon in the foreground until SIGINT or SIGTERM.

    Parameters
    ----------
    state : StateDir
        Its state directory.
    certs : CertPaths or None
        TLS material; None only with ``--insecure``.
    host, port : str, int
        The public address of the Fleet front.

    Returns
    -------
    int
        130 / 143 after a signal, 1 if the SuperLink died.

    """
    import uvicorn

    if certs is not None:
        certs.check()
    state.prepare()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
    logging.getLogger("hospfed.server").addHandler(handler)
    logging.getLogger("hospfed.server").setLevel(logging.INFO)
    lock = filelock.FileLock(state.lock, mode=0o600)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise ConfigError(
            f"another hospfed-server is running on {state.root} (lock {state.lock})"
        ) from None
    try:
        _end_stale_group(state)
        public = _bind_public(host, port)
    except BaseException:
        lock.release()
        raise
    try:
        internal = free_loopback_port()
        write_flwr_home(state.flwr_home, internal, certs.ca if certs else None)
        with Signals() as signals:
            link = Child(
                "the SuperLink",
                superlink_argv(state, internal, certs),
                state.superlink_log,
                flower_env(),
            )
            try:
                wait_for_port(internal, link)
                upstream = Upstream(internal, certs.ca if certs else None)
                config = uvicorn.Config(
                    make_front(upstream),
                    host=host,
                    port=port,
                    log_level="warning",
                    ssl_certfile=str(certs.server) if certs else None,
                    ssl_keyfile=str(certs.server_key) if certs else None,
                )
                server = uvicorn.Server(config)
                _write_info(state, host, port, internal, certs, link.pid)
                died = _watch(link, server)
                print(
                    f"hospfed-server: serving hospitals on {host}:{port} "
                    f"({'TLS, admitted hospitals only' if certs else 'INSECURE'}); "
                    f"state {state.root}",
                    file=sys.stderr,
                    flush=True,
                )
                if signals.received is None:
                    server.run(sockets=[public])
            finally:
                link.stop()
                state.info.unlink(missing_ok=True)
            if signals.received is not None:
                print(
                    f"hospfed-server: stopped (signal {signals.received})",
                    file=sys.stderr,
                )
                return signals.exit_code
            if died.is_set():
                print(
                    f"hospfed-server: error: the SuperLink exited; its log: "
                    f"{state.superlink_log}",
                    file=sys.stderr,
                )
                return 1
            return 0
    finally:
        public.close()
        lock.release()


def _end_stale_group(state: StateDir) -> None:
    """End what a daemon killed outright left: Flower's processes in its group.

    A SIGKILLed daemon cannot stop its SuperLink's process group; the
    SuperLink dies with it (PDEATHSIG) but a ServerApp under it may live
    on. Its ``daemon.json`` (still there, its pid dead: we hold the lock)
    names the group; only processes of that group running Flower's
    programs are killed.
    """
    try:
        group = int(json.loads(state.info.read_text()).get("superlink_pid", 0))
    except (FileNotFoundError, json.JSONDecodeError, ValueError, AttributeError):
        return
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        flower = b"flwr" in command or b"flower" in command
        if group > 1 and int(stat_fields[2]) == group and flower:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
    state.info.unlink(missing_ok=True)


def _bind_public(host: str, port: int) -> socket.socket:
    """Bind the public address first: a taken port fails before anything starts.

    Raises
    ------
    ConfigError
        Naming the address and the system's reason.

    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=128)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}): is another "
            "daemon running there? choose another --port or --host"
        ) from None


def _watch(link: Child, server: object) -> threading.Event:
    """Stop the front if the SuperLink dies; the event says it did."""
    died = threading.Event()

    def watch() -> None:
        link.process.wait()
        if not getattr(server, "should_exit", True):
            died.set()
        server.should_exit = True  # type: ignore[attr-defined]

    threading.Thread(target=watch, daemon=True, name="superlink-watch").start()
    return died


def _write_info(
    state: StateDir,
    host: str,
    port: int,
    internal: int,
    certs: CertPaths | None,
    pid: int,
) -> None:
    info = {
        "pid": os.getpid(),
        "address": f"{host}:{port}",
        "superlink": f"127.0.0.1:{internal}",
        "superlink_pid": pid,
        "tls": certs is not None,
        "ca": str(certs.ca) if certs else None,
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    atomic_write(state.info, json.dumps(info, indent=2).encode(), mode=0o600)


def read_info(state: StateDir) -> dict[str, object] | None:
    """The running daemon's ``daemon.json``, or None if it is not running.

    A daemon killed outright leaves its ``daemon.json``: it counts only if
    its process still runs.
    """
    try:
        info = json.loads(state.info.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if not isinstance(info, dict):
        return None
    try:
        os.kill(int(info.get("pid", 0)), 0)
    except (ProcessLookupError, ValueError, OverflowError):
        return None
    except PermissionError:
        pass  # it runs, as another user
    return info


__all__ = ["StateDir", "read_info", "serve", "superlink_argv"]
