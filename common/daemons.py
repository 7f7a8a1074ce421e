"""What both long-lived processes need: Flower's programs as supervised children.

``hospfed-server start`` runs Flower's SuperLink and ``hospfed-client
start`` runs Flower's SuperNode as child processes. This module owns how:
the environment they get (:func:`flower_env`: this interpreter's scripts
first on ``PATH``, no update check, no telemetry, no runtime dependency
installation), a free port on loopback (:func:`free_loopback_port`), the
child in a process group of its own so that stopping it also stops the
SuperExec and app processes Flower starts under it (:class:`Child`), and
SIGINT / SIGTERM turned into a clean stop with exit code 130 / 143
(:class:`Signals`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

__all__ = [
    "Child",
    "Signals",
    "flower_env",
    "flower_pairs",
    "free_loopback_port",
    "wait_for_port",
]

STOP_GRACE = 15.0
"""Seconds a child gets to stop after SIGTERM before its group is killed."""


def flower_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for Flower's programs, started from this interpreter."""
    env = dict(os.environ)
    scripts = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([scripts, env.get("PATH", "")])
    env.update(
        FLWR_DISABLE_UPDATE_CHECK="1",
        FLWR_TELEMETRY_ENABLED="0",
        FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1",
    )
    env.update(extra or {})
    return env


def flower_pairs(values: dict[str, object], *, flag: str) -> str:
    """``key="value" ...`` as Flower's ``--node-config`` / ``--run-config`` read them.

    Values are JSON-quoted (a TOML basic string: backslashes, Unicode and
    spaces survive). Flower splits the pairs with a regular expression
    that ends a quoted value at the next ``"``, so a value holding one
    cannot pass intact: it is refused, naming the key.

    Raises
    ------
    ConfigError
        If a key or a value cannot be passed intact.

    """
    from hospfed.common.errors import ConfigError

    pairs = []
    for key, value in values.items():
        text = json.dumps(value, ensure_ascii=False)
        if not key.replace("-", "").isalnum() or '"' in text[1:-1]:
            raise ConfigError(
                f"{flag} {key}: a value holding '\"' cannot be passed to Flower; "
                "rename the file or directory"
            )
        pairs.append(f"{key}={text}")
    return " ".join(pairs)


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, child: Child, *, timeout: float = 60.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port``.

    Raises
    ------
    RuntimeError
        If ``child`` exits first or ``timeout`` passes.

    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(
                f"{child.name} exited with code {child.poll()} while starting; "
                f"its log: {child.log}"
            )
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=1.0),
        ):
            return
        time.sleep(0.2)
    raise RuntimeError(
        f"{child.name} did not start within {timeout:.0f} s: {child.log}"
    )


class Child:
    """A Flower program in its own process group, its output in a log file.

    Parameters
    ----------
    name : str
        What to call it in messages.
    argv : sequence of str
        The command.
    log : Path
        Its stdout and stderr (appended, 0600).
    env : dict
        Its environment (see :func:`flower_env`).

    """

    def __init__(
        self, name: str, argv: Sequence[str], log: Path, env: dict[str, str]
    ) -> None:
        self.name, self.log = name, log
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self.process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, no lock taken
            )
        finally:
            os.close(fd)

    @property
    def pid(self) -> int:
        """The child's process id (also its process group id)."""
        return self.process.pid

    def poll(self) -> int | None:
        """Its exit code, or None while it runs."""
        return self.process.poll()

    def stop(self, grace: float = STOP_GRACE) -> int:
        """SIGTERM the group, then SIGKILL what is left after ``grace`` seconds."""
        self._signal_group(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            code = self.process.wait()
        self._signal_group(signal.SIGKILL)  # grandchildren left in the group
        return code

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux prctl).

    The child has a process group of its own (so a signal to it reaches
    Flower's processes under it), which also means a SIGKILL of hospfed's
    process would leave it running; with this the kernel stops it instead.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Signals:
    """Record SIGINT and SIGTERM instead of dying; the exit code they ask for.

    Use as a context manager in the main thread; :attr:`received` is the
    first signal's number (or None) and :attr:`exit_code` 128 plus it.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, object] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum

    @property
    def exit_code(self) -> int:
        """130 after SIGINT, 143 after SIGTERM, 0 without a signal."""
        return 0 if self.received is None else 128 + self.received

    def __enter__(self) -> Signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *_: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
