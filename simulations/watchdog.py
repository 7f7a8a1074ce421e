"""Clean up after a simulation run that was killed outright.

``python -m hospfed.simulations.watchdog WORKSPACE TOKEN PID``, started by
:meth:`~hospfed.simulations.workspace.Workspace.create` in its own session
(so that a signal to the run's process group spares it), keeps a snapshot
of the run's process tree (process ``PID`` and its descendants) in
``WORKSPACE/processes.json`` every half second, until its standard input
ends: the run closed the pipe, or died (even by SIGKILL, when nothing in
the run itself can clean up). If the workspace is still there, the run did
not clean up: the watchdog kills the run's remaining processes (Ray's
agents outlive a killed driver, reparented to init, ignoring SIGTERM) and
deletes the workspace, keys included. It imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import sys
from pathlib import Path

from hospfed.simulations.processes import (
    descendants,
    kill_processes,
    read_snapshot,
    run_processes,
    write_snapshot,
)

POLL_SECONDS = 0.5
PROCESSES_FILE = "processes.json"  # as hospfed.simulations.workspace


def main(argv: list[str] | None = None) -> int:
    """Watch the run until it ends; remove what it left. Returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m hospfed.simulations.watchdog WORKSPACE TOKEN PID")
        return 2
    workspace, token, pid = Path(args[0]), args[1], int(args[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    snapshot = workspace / PROCESSES_FILE
    seen: list[tuple[int, int | None]] = []
    stdin = sys.stdin.fileno()
    while True:
        ready, _, _ = select.select([stdin], [], [], POLL_SECONDS)
        if ready and not os.read(stdin, 4096):
            break  # the run closed the pipe or died
        tree = sorted(p for p in descendants(pid) if p[0] != os.getpid())
        if tree and tree != seen and workspace.is_dir():
            seen = tree
            with contextlib.suppress(OSError):
                write_snapshot(snapshot, seen)
    if workspace.exists():
        kill_processes([*run_processes(token), *read_snapshot(snapshot), *seen])
        shutil.rmtree(workspace, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
