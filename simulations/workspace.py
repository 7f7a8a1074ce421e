"""The simulation's private workspace: keys, encrypted datasets, ledgers.

Every ``hospfed-sim`` run keeps its virtual hospitals' files in one
workspace, ``$TMPDIR/hospfed-sim-UID/run-XXXX/`` (``HOSPFED_SIM_WORKSPACES``
overrides the parent), mode 0700, laid out so that no key sits next to the
data it opens::

    owner.json            pid, start time and token of the run (0600)
    processes.json        the run's process tree, kept by the watchdog
    keys/HOSPITAL/        0700, the hospital's key file (0600)
    data/HOSPITAL/        0700, its encrypted dataset (.hfd)
    state/HOSPITAL/       0700, its privacy ledger (when no --state-dir)

It is removed on every exit path: at the end of the run (the ``with``
block), on a second Ctrl-C (:meth:`Workspace.remove` from the signal
handler), by a watchdog process when the run is killed outright (it waits
for the run's end on a pipe, see :mod:`hospfed.simulations.watchdog`), and
otherwise at the next start: a workspace whose owner is dead is removed,
and the processes it left are killed (see :mod:`hospfed.simulations.processes`
for how they are found).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from hospfed.common.errors import ConfigError
from hospfed.common.files import atomic_write
from hospfed.simulations.processes import (
    RUN_ENV,
    Proc,
    descendants,
    is_alive,
    kill_processes,
    read_snapshot,
    run_processes,
    start_time,
)

__all__ = [
    "PROCESSES_FILE",
    "WORKSPACES_ENV",
    "Workspace",
    "left_processes",
    "sweep_stale",
    "workspaces_root",
]

WORKSPACES_ENV = "HOSPFED_SIM_WORKSPACES"
OWNER_FILE = "owner.json"
PROCESSES_FILE = "processes.json"
_ORPHAN_AGE = 60.0  # seconds before a workspace without owner file is stale


def workspaces_root() -> Path:
    """The parent of every run's workspace (``HOSPFED_SIM_WORKSPACES`` or temp)."""
    override = os.environ.get(WORKSPACES_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    return Path(tempfile.gettempdir()) / f"hospfed-sim-{os.getuid()}"


def _private_dir(path: Path) -> Path:
    """Create ``path`` mode 0700, or check that it is this user's, private."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(path)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the simulation workspace in {path} ({exc.strerror}); "
            f"set {WORKSPACES_ENV} to a writable directory"
        ) from None
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.getuid()
        or info.st_mode & 0o077
    ):
        raise ConfigError(
            f"{path} is not a private directory of this user (mode "
            f"{stat.filemode(info.st_mode)}): the simulation keeps keys there; "
            f"remove it, or set {WORKSPACES_ENV} to another directory"
        )
    return path


class Workspace:
    """One run's private workspace (see the module docstring).

    Use :meth:`create`; as a context manager it is removed on exit.

    Attributes
    ----------
    path : Path
        The workspace directory (mode 0700).
    token : str
        Marks the run's processes (:data:`~hospfed.simulations.processes.RUN_ENV`).

    """

    def __init__(self, path: Path, token: str) -> None:
        self.path = path
        self.token = token
        self._watchdog: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls, root: Path | None = None) -> Workspace:
        """Remove stale workspaces, then create this run's.

        Also marks this process's environment with the run's token, so
        that every process started from now on (Ray's) carries it, and
        starts the watchdog.

        Raises
        ------
        ConfigError
            If the parent directory is not this user's private directory.

        """
        parent = _private_dir(root or workspaces_root())
        sweep_stale(parent)
        path = Path(tempfile.mkdtemp(prefix="run-", dir=parent))  # 0700
        token = secrets.token_hex(16)
        owner = {"pid": os.getpid(), "started": start_time(os.getpid()), "token": token}
        atomic_write(path / OWNER_FILE, json.dumps(owner).encode(), mode=0o600)
        workspace = cls(path, token)
        workspace._watchdog = _start_watchdog(path, token)
        os.environ[RUN_ENV] = token
        return workspace

    def key_file(self, hospital: str) -> Path:
        """Where ``hospital``'s key goes (its own 0700 directory)."""
        return self._private("keys", hospital) / "site.key"

    def data_file(self, hospital: str) -> Path:
        """Where ``hospital``'s encrypted dataset goes (another 0700 directory)."""
        return self._private("data", hospital) / "site.hfd"

    @property
    def state_dir(self) -> Path:
        """Parent of the hospitals' ledger directories (when no --state-dir)."""
        return self._private("state")

    def _private(self, *parts: str) -> Path:
        directory = self.path
        for part in parts:  # each level 0700 (mkdir's parents get 0777)
            directory = directory / part
            directory.mkdir(mode=0o700, exist_ok=True)
        return directory

    def remove(self) -> None:
        """Kill the run's remaining processes, delete the workspace, end the watchdog.

        Safe to call twice, and from a signal handler.
        """
        watchdog = self._watchdog
        procs = [*descendants(os.getpid()), *left_processes(self.path, self.token)]
        kill_processes(p for p in procs if watchdog is None or p[0] != watchdog.pid)
        shutil.rmtree(self.path, ignore_errors=True)
        if os.environ.get(RUN_ENV) == self.token:
            del os.environ[RUN_ENV]
        self._watchdog = None
        if watchdog is not None:
            with contextlib.suppress(OSError):
                if watchdog.stdin is not None:
                    watchdog.stdin.close()  # it sees the end, finds nothing to do
            with contextlib.suppress(subprocess.TimeoutExpired):
                watchdog.wait(timeout=2)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()


def _start_watchdog(path: Path, token: str) -> subprocess.Popen[bytes] | None:
    """Start the process that cleans up if this one is killed (own session)."""
    env = {k: v for k, v in os.environ.items() if k != RUN_ENV}
    try:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hospfed.simulations.watchdog",
                str(path),
                token,
                str(os.getpid()),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a signal to our process group spares it
            env=env,
        )
    except OSError:
        return None  # the next start removes what a killed run leaves


def sweep_stale(parent: Path) -> list[Path]:
    """Remove the workspaces of runs that are gone; kill what they left running.

    A workspace is stale when the process in its owner file is dead (or
    its id now belongs to a process started at another time), or when it
    has no owner file and is older than a minute (a run killed while
    creating it).

    Parameters
    ----------
    parent : Path
        The workspaces' parent directory.

    Returns
    -------
    list of Path
        The workspaces removed.

    """
    removed = []
    for path in sorted(parent.glob("run-*")):
        if not path.is_dir() or path.is_symlink():
            continue
        owner = _read_owner(path)
        if owner is None:
            try:
                age = time.time() - path.stat().st_mtime
            except OSError:
                continue
            if age < _ORPHAN_AGE:
                continue
        elif is_alive(owner[0], owner[1]):
            continue
        else:
            kill_processes(left_processes(path, owner[2]))
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def left_processes(path: Path, token: str) -> list[Proc]:
    """The processes of the run with workspace ``path`` and ``token``.

    Those marked with the token in their environment, and those in the
    watchdog's last snapshot of the run's process tree.
    """
    return [*run_processes(token), *read_snapshot(path / PROCESSES_FILE)]


def _read_owner(path: Path) -> tuple[int, int | None, str] | None:
    try:
        data = json.loads((path / OWNER_FILE).read_text())
        started = data.get("started")
        return (
            int(data["pid"]),
            None if started is None else int(started),
            str(data["token"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
