"""Finding and ending the processes of one simulation run.

A run's processes are the driver's descendants: Ray's GCS server, raylet,
dashboard and runtime-env agents, workers. Two marks find them even after
the driver is gone (a killed driver's raylet dies with it, and Ray's agents
are then reparented to init and linger, ignoring SIGTERM):

- ``HOSPFED_SIM_RUN=<token>`` in their environment (set before Ray
  starts, inherited by all; but a process that renames itself, as Ray's
  agents do, may overwrite its environment block);
- a snapshot of the driver's process tree, ``(pid, start time)`` pairs,
  kept current by the watchdog (:mod:`hospfed.simulations.watchdog`) in
  the run's workspace; the start time tells a reused process id apart.

Linux only (``/proc``); elsewhere nothing is found and Ray's own shutdown
is all there is.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "RUN_ENV",
    "Proc",
    "descendants",
    "is_alive",
    "kill_processes",
    "read_snapshot",
    "run_processes",
    "start_time",
    "write_snapshot",
]

RUN_ENV = "HOSPFED_SIM_RUN"
"""Environment variable marking every process of one simulation run."""

Proc = tuple[int, int | None]
"""A process: its id and its start time (None: unknown)."""

_PROC = Path("/proc")


def _stat(pid: int | str) -> list[str] | None:
    """Fields of ``/proc/PID/stat`` after the command name (state first)."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks after boot), None if unknown."""
    stat = _stat(pid)
    return None if stat is None else int(stat[19])


def is_alive(pid: int, started: int | None = None) -> bool:
    """Whether ``pid`` runs (not a zombie), and started at ``started``.

    Parameters
    ----------
    pid : int
        A process id.
    started : int, optional
        Its start time (:func:`start_time`); another start time means the
        id now belongs to another process.

    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    stat = _stat(pid)
    if stat is None:  # just exited; or no /proc: trust kill(0)
        return not _PROC.is_dir()
    if stat[0] in ("Z", "X"):
        return False
    return started is None or stat[19] == str(started)


def descendants(pid: int) -> list[Proc]:
    """Every living descendant of ``pid``, with its start time."""
    children: dict[int, list[Proc]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir(_PROC):
            stat = _stat(entry.name) if entry.name.isdigit() else None
            if stat is not None and stat[0] not in ("Z", "X"):
                child: Proc = (int(entry.name), int(stat[19]))
                children.setdefault(int(stat[1]), []).append(child)
    found: list[Proc] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


def run_processes(token: str) -> list[Proc]:
    """Every process but this one whose environment marks run ``token``."""
    needle = f"{RUN_ENV}={token}".encode()
    found: list[Proc] = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(_PROC):
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (_PROC / entry.name / "environ").read_bytes()
            except OSError:
                continue
            if needle in environ.split(b"\0"):
                pid = int(entry.name)
                found.append((pid, start_time(pid)))
    return found


def kill_processes(procs: Iterable[Proc], *, grace: float = 0.0) -> list[Proc]:
    """End ``procs`` (those still the same processes); return survivors.

    Parameters
    ----------
    procs : iterable of Proc
        Processes and their start times.
    grace : float
        Seconds to wait after SIGTERM before SIGKILL; 0 sends SIGKILL at
        once.

    Returns
    -------
    list of Proc
        Those still alive 2 seconds after SIGKILL (normally none).

    """
    alive = sorted({p for p in procs if p[0] != os.getpid() and is_alive(*p)})
    if grace > 0:
        _signal_all(alive, signal.SIGTERM)
        alive = _wait_gone(alive, grace)
    _signal_all(alive, signal.SIGKILL)
    return _wait_gone(alive, 2.0)


def _signal_all(procs: list[Proc], sig: signal.Signals) -> None:
    for pid, _ in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _wait_gone(procs: list[Proc], seconds: float) -> list[Proc]:
    deadline = time.monotonic() + seconds
    alive = [p for p in procs if is_alive(*p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [p for p in alive if is_alive(*p)]
    return alive


def write_snapshot(path: Path, procs: list[Proc]) -> None:
    """Record ``procs`` in ``path`` (replaced whole; private to the user)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump([list(p) for p in procs], handle)
    os.replace(tmp, path)


def read_snapshot(path: Path) -> list[Proc]:
    """What :func:`write_snapshot` recorded (nothing if unreadable)."""
    try:
        data = json.loads(path.read_text())
        return [(int(pid), None if t is None else int(t)) for pid, t in data]
    except (OSError, ValueError, TypeError):
        return []
