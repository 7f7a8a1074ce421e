"""Fail safe, end to end: real hospfed-sim processes, real signals.

Each run is started in its own process group, as a shell starts a job; the
signals go to the whole group (as Ctrl-C and most supervisors send them)
except SIGKILL, which goes to the driver only (as an OOM killer would).
Before signalling, the test records the run's process tree (Ray's GCS
server, raylet, agents, workers, the watchdog); afterwards it checks that
none of them is alive a few seconds after the run ended, and that the
run's workspace (keys next to nothing, but keys) is gone.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hospfed.server.checkpoint import load_checkpoint
from hospfed.server.results import load_weights
from hospfed.simulations.processes import descendants, is_alive
from hospfed.simulations.workspace import WORKSPACES_ENV

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
# Three short rounds (10 local steps): the point is stopping, not learning.
# Without SecAgg+: its stochastic quantisation (Flower draws the rounding from
# an unseeded generator) moves each aggregate by up to 4.7e-5, so a resumed
# run could not equal an uninterrupted one bit for bit.
RUN = [
    "--rounds",
    "3",
    "--strategy",
    "fedyogi",
    "--seed",
    "1",
    "--local-steps",
    "10",
    "--no-secure-aggregation",
]


def start(args, workspaces):
    return subprocess.Popen(
        [str(BIN / "hospfed-sim"), "heart", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=os.environ | {WORKSPACES_ENV: str(workspaces)},
    )


def wait_for(proc, text, timeout=300.0):
    """Read the run's output until ``text`` appears (a round was checkpointed)."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if not ready:
            continue
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return
    proc.kill()
    raise AssertionError(f"never printed {text!r}: {''.join(seen)[-2000:]}")


def run_tree(proc):
    """The run's processes now (Ray must be among them)."""
    tree = descendants(proc.pid)
    assert len(tree) >= 5, tree  # GCS, raylet, agents, workers, watchdog
    return tree


def assert_all_gone(tree, seconds=5.0):
    deadline = time.monotonic() + seconds
    alive = tree
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if is_alive(*p)]
    names = [Path(f"/proc/{pid}/cmdline").read_bytes()[:60] for pid, _ in alive]
    assert alive == [], f"processes of the run outlived it: {names}"


def metrics(out):
    return json.loads((out / "metrics.json").read_text())


def sim(args, workspaces):
    return subprocess.run(
        [str(BIN / "hospfed-sim"), "heart", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ | {WORKSPACES_ENV: str(workspaces)},
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same run, never interrupted."""
    root = tmp_path_factory.mktemp("reference")
    done = sim([*RUN, "--out", str(root / "run")], root / "ws")
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "run"


def test_sigint_stops_after_the_round_and_the_resumed_run_equals_an_uninterrupted_one(
    tmp_path, reference
):
    out, workspaces = tmp_path / "run", tmp_path / "ws"
    proc = start([*RUN, "--out", str(out)], workspaces)
    wait_for(proc, "round   1/3")
    tree = run_tree(proc)
    signalled = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    seconds = time.monotonic() - signalled
    assert proc.returncode == 130, stderr[-3000:]
    ours = [line for line in stderr.splitlines() if line.startswith("hospfed-sim")]
    assert len(ours) == 1, stderr
    found = re.fullmatch(
        rf"hospfed-sim: interrupted after round ([12]) of 3; results so far in "
        rf"{re.escape(str(out))} \(resume with --resume {re.escape(str(out))}\)",
        ours[0],
    )
    assert found, ours[0]
    assert "Traceback" not in stdout + stderr
    assert_all_gone(tree)
    assert list(workspaces.iterdir()) == []
    completed = int(found.group(1))
    written = metrics(out)
    assert (written["status"], written["completed_rounds"]) == (
        "interrupted",
        completed,
    )
    assert written["reason"] == f"interrupted (SIGINT) after round {completed} of 3"
    assert (out / "curves.png").exists()
    print(f"SIGINT to exit: {seconds:.1f} s (the round in progress finishes first)")

    resumed = sim(["--resume", str(out)], workspaces)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {out} after round {completed} of 3, to round 3" in resumed.stdout
    # Same seed, same weights, bit for bit: the round guard aggregates in a
    # fixed order, FedYogi's moments come back from the checkpoint, and each
    # round keeps its number (batch order, bias correction).
    for got, want in zip(
        load_weights(out / "model.npz"),
        load_weights(reference / "model.npz"),
        strict=True,
    ):
        assert np.array_equal(got, want), np.max(np.abs(got - want))
    written, uninterrupted = metrics(out), metrics(reference)
    assert [r["round"] for r in written["rounds"]] == [1, 2, 3]
    assert written["status"] == "complete" and written["run"]["resumed_from"] == [
        completed
    ]
    assert written["rounds"] == uninterrupted["rounds"]
    assert written["run"]["config_hash"] == uninterrupted["run"]["config_hash"]
    assert list(workspaces.iterdir()) == []


def test_a_second_sigint_stops_at_once_without_a_traceback(tmp_path):
    out, workspaces = tmp_path / "run", tmp_path / "ws"
    proc = start(["--rounds", "3", "--out", str(out)], workspaces)  # long rounds
    wait_for(proc, "round   1/3")
    tree = run_tree(proc)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.2)
    second = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    seconds = time.monotonic() - second
    assert proc.returncode == 130
    assert seconds < 3, f"the second Ctrl-C took {seconds:.1f} s"
    assert "Traceback" not in stdout + stderr
    assert stderr.splitlines()[-1].startswith(
        "hospfed-sim: stopped at once (SIGINT again) after round "
    ), stderr[-2000:]
    assert_all_gone(tree)
    assert list(workspaces.iterdir()) == []
    assert load_checkpoint(out).completed_rounds >= 1
    print(f"second SIGINT to exit: {seconds:.2f} s")


def test_a_run_killed_outright_keeps_its_last_round_and_leaves_nothing_running(
    tmp_path,
):
    out, workspaces = tmp_path / "run", tmp_path / "ws"
    proc = start([*RUN, "--out", str(out)], workspaces)
    wait_for(proc, "round   1/3")
    tree = run_tree(proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    # Ray's agents, which ignore SIGTERM once their raylet is gone, and the
    # workspace with every hospital's key: the watchdog ends them.
    assert_all_gone(tree)
    deadline = time.monotonic() + 5
    while list(workspaces.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(workspaces.iterdir()) == []
    checkpoint = load_checkpoint(out)
    assert checkpoint.completed_rounds >= 1 and checkpoint.status == "running"
    written = metrics(out)
    assert written["status"] == "running"
    assert written["completed_rounds"] == checkpoint.completed_rounds
    assert [w.shape for w in load_weights(out / "model.npz")] == [(13, 1), (1,)]


def test_sigterm_then_resume_spends_each_rounds_budget_once(tmp_path):
    out, workspaces, ledgers = tmp_path / "run", tmp_path / "ws", tmp_path / "ledgers"
    args = ["--rounds", "3", "--local-steps", "10", "--epsilon", "1"]
    proc = start([*args, "--state-dir", str(ledgers), "--out", str(out)], workspaces)
    wait_for(proc, "round   1/3")
    tree = run_tree(proc)
    os.killpg(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-3000:]
    assert re.search(r"hospfed-sim: interrupted after round [12] of 3; ", stderr)
    assert_all_gone(tree)
    completed = metrics(out)["completed_rounds"]

    resumed = sim(["--resume", str(out)], workspaces)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    written = metrics(out)
    assert [r["round"] for r in written["rounds"]] == [1, 2, 3]
    privacy = written["privacy"]
    assert privacy["targets"] == {"epsilon": 1.0, "delta": 1e-3, "clip_norm": 1.0}
    assert 0 < privacy["max_epsilon"] <= 1.0
    for hospital in ("cleveland", "hungary", "switzerland", "va"):
        ledger = json.loads((ledgers / hospital / "privacy-ledger.json").read_text())
        entries = ledger["entries"]
        # The hospitals' ledgers decide: each round reserved once, the
        # resumed run's rounds under another run id.
        assert [e["round"] for e in entries] == [1, 2, 3], hospital
        runs = [e["run"] for e in entries]
        assert len(set(runs[:completed])) == 1 and len(set(runs)) == 2
        spent = [r["epsilon"][hospital] for r in written["rounds"]]
        assert spent == sorted(spent) and spent[-1] <= 1.0
