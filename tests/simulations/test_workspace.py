"""The simulation's workspace: private, keys apart from data, never left behind."""

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from hospfed.common.errors import ConfigError
from hospfed.simulations.processes import (
    RUN_ENV,
    is_alive,
    kill_processes,
    run_processes,
    start_time,
)
from hospfed.simulations.workspace import OWNER_FILE, Workspace, sweep_stale

STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(120)"
)


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def stubborn(env=None):
    """A process that ignores SIGTERM, like Ray's agents after their raylet died."""
    child = subprocess.Popen(
        [sys.executable, "-c", STUBBORN],
        stdout=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    assert child.stdout.readline() == b"ready\n"
    return child


def test_keys_and_data_live_apart_in_private_directories(tmp_path):
    workspace = Workspace.create(tmp_path / "ws")
    try:
        key, data = workspace.key_file("va"), workspace.data_file("va")
        assert key.parent != data.parent
        assert not data.parent.is_relative_to(key.parent)
        for directory in (
            workspace.path,
            key.parent,
            key.parent.parent,
            data.parent,
            data.parent.parent,
            workspace.state_dir,
        ):
            assert mode(directory) == 0o700, directory
        assert mode(workspace.path / OWNER_FILE) == 0o600
        assert os.environ[RUN_ENV] == workspace.token
    finally:
        workspace.remove()
    assert not workspace.path.exists()
    assert RUN_ENV not in os.environ
    workspace.remove()  # twice is fine


def test_a_workspace_parent_others_can_read_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with pytest.raises(ConfigError, match="is not a private directory of this user"):
        Workspace.create(shared)


def test_a_killed_runs_workspace_and_processes_go_at_the_next_start(tmp_path):
    root = tmp_path / "ws"
    root.mkdir(mode=0o700)
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
    )
    dead_pid = int(done.stdout)
    leftover = stubborn(os.environ | {RUN_ENV: "deadbeef"})
    dead = root / "run-dead"
    dead.mkdir(mode=0o700)
    (dead / OWNER_FILE).write_text(
        json.dumps({"pid": dead_pid, "started": 1, "token": "deadbeef"})
    )
    (dead / "site.key").write_bytes(b"secret")
    live = root / "run-live"
    live.mkdir(mode=0o700)
    (live / OWNER_FILE).write_text(
        json.dumps(
            {"pid": os.getpid(), "started": start_time(os.getpid()), "token": "x"}
        )
    )
    half_made_old, half_made_new = root / "run-old", root / "run-new"
    half_made_old.mkdir()
    half_made_new.mkdir()
    os.utime(half_made_old, (time.time() - 600, time.time() - 600))
    assert sorted(p.name for p in sweep_stale(root)) == ["run-dead", "run-old"]
    assert sorted(p.name for p in root.iterdir()) == ["run-live", "run-new"]
    assert leftover.wait(timeout=5) == -signal.SIGKILL


def test_processes_marked_with_the_token_are_found_and_killed_even_ignoring_sigterm():
    child = stubborn(os.environ | {RUN_ENV: "cafe"})
    found = run_processes("cafe")
    assert [pid for pid, _ in found] == [child.pid]
    assert kill_processes(found, grace=0.2) == []
    assert child.wait(timeout=5) == -signal.SIGKILL
    assert not is_alive(child.pid)


def test_the_watchdog_cleans_up_after_a_run_killed_by_sigkill(tmp_path):
    # The run: a workspace with a key, and a child that outlives its parent
    # and ignores SIGTERM (as Ray's agents do); then it is killed outright.
    root = tmp_path / "ws"
    script = textwrap.dedent(f"""
        import subprocess, sys, time
        from pathlib import Path
        from hospfed.simulations.workspace import Workspace
        workspace = Workspace.create(Path({str(root)!r}))
        workspace.key_file("va").write_bytes(b"secret")
        child = subprocess.Popen([sys.executable, "-c", {STUBBORN!r}],
                                 stdout=subprocess.PIPE, start_new_session=True)
        child.stdout.readline()
        time.sleep(1.2)  # the watchdog's snapshot sees the child
        print(workspace.path, child.pid, flush=True)
        time.sleep(120)
    """)
    run = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    )
    path, child = run.stdout.readline().split()
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    deadline = time.monotonic() + 5
    while (
        os.path.exists(path) or is_alive(int(child))
    ) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(path), "the workspace (and its key) outlived the run"
    assert not is_alive(int(child)), "a process of the run outlived it"
