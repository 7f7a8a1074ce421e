"""Deployment, end to end: the daemon and three hospital processes on loopback.

Real processes as a consortium runs them: ``hospfed-server certs``, ``start``
(TLS, node authentication, the Fleet-only front), ``admit``; each hospital's
data made by its own ``keygen`` / ``demo-export`` / ``prepare``, its own
``node-key`` and ``hospfed-client start``. Then a run with SecAgg+ and DP
on, and the refusals: an unadmitted key, a wrong CA, plaintext, the Control
API on the public port. Finally SIGTERM: every process exits 143 and
leaves no Flower process behind.
"""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from hospfed.common.daemons import free_loopback_port
from hospfed.common.protocol import METRIC_WHITELIST
from hospfed.simulations.processes import descendants, is_alive

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
HOSPITALS = ("cleveland", "hungary", "switzerland")


def cli(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / str(args[0])), *map(str, args[1:])],
        capture_output=True,
        text=True,
        check=check,
        timeout=600,
    )


@dataclass
class Consortium:
    root: Path
    port: int
    daemon: subprocess.Popen[bytes]
    hospitals: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def ca(self) -> Path:
        return self.root / "certs" / "ca.pem"

    def daemon_log(self) -> str:
        return (self.root / "daemon.err").read_text()

    def site(self, name: str) -> Path:
        return self.root / name

    def start_hospital(self, name: str, *extra: str) -> subprocess.Popen[bytes]:
        site = self.site(name)
        argv = [
            str(BIN / "hospfed-client"),
            "start",
            "--server",
            f"127.0.0.1:{self.port}",
            "--data",
            str(site / "data" / "site.hfd"),
            "--key",
            str(site / "data" / "site.key"),
            "--state",
            str(site / "state"),
            "--hospital",
            name,
            "--backend",
            "torch",
            "--epsilon",
            "8",
            *extra,
        ]
        if "--ca" not in extra:
            argv += ["--ca", str(self.ca)]
        if "--node-key" not in extra:
            argv += ["--node-key", str(site / "node" / "node.key")]
        return subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=(site / "start.err").open("ab"),
            start_new_session=True,
        )

    def online(self) -> set[str]:
        done = cli("hospfed-server", "hospitals", "--state", self.state, check=False)
        if done.returncode != 0:
            return set()  # the daemon is (re)starting
        listing = json.loads(done.stdout)
        return {row["hospital"] for row in listing if row["status"] == "online"}


def _make_site(root: Path, name: str) -> None:
    site = root / name
    (site / "data").mkdir(parents=True, mode=0o700)
    cli("hospfed-client", "keygen", "--out", site / "data" / "site.key")
    raw = site / "raw.csv"
    cli("hospfed-client", "demo-export", "--hospital", name, "--out", raw)
    cli(
        "hospfed-client",
        "prepare",
        raw,
        "--out",
        site / "data" / "site.hfd",
        "--key",
        site / "data" / "site.key",
    )
    raw.unlink()
    cli("hospfed-client", "node-key", "--out", site / "node", "--name", name)


def _wait(condition, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}")


def _start_daemon(root: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            str(BIN / "hospfed-server"),
            "start",
            "--state",
            str(root / "state"),
            "--certs",
            str(root / "certs"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=(root / "daemon.err").open("ab"),
        start_new_session=True,
    )


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    root = tmp_path_factory.mktemp("consortium")
    cli(
        "hospfed-server", "certs", "--out", root / "certs", "--host", "coordinator.test"
    )
    port = free_loopback_port()
    daemon = _start_daemon(root, port)
    group = Consortium(root, port, daemon)
    try:
        _wait((root / "state" / "daemon.json").exists, "the daemon", 60)
        for name in HOSPITALS:
            _make_site(root, name)
            cli(
                "hospfed-server",
                "admit",
                name,
                root / name / "node" / "node.pub",
                "--state",
                root / "state",
            )
        for name in HOSPITALS:
            group.hospitals[name] = group.start_hospital(name)
        _wait(lambda: group.online() == set(HOSPITALS), "three hospitals online")
        yield group
    finally:
        for process in [*group.hospitals.values(), group.daemon]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [*group.hospitals.values(), group.daemon]:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def test_a_run_completes_over_tls_with_node_auth_secagg_and_dp(consortium):
    done = cli(
        "hospfed-server",
        "run",
        "--state",
        consortium.state,
        "num-rounds=3",
        "min-hospitals=2",
        "secure-aggregation=true",
        "local-steps=10",
        "personalise=finetune",
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "round 3/3" in done.stdout
    (out,) = [
        p
        for p in (consortium.state / "runs").iterdir()
        if (p / "metrics.json").exists()
    ]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "complete"
    assert metrics["completed_rounds"] == 3
    assert metrics["run"]["secure_aggregation"] is not None  # SecAgg+ was on
    assert set(metrics["privacy"]["epsilon"]) == set(HOSPITALS)
    assert 0 < metrics["privacy"]["max_epsilon"] <= 8
    assert (out / "model.npz").exists()
    adapted = metrics["final"]["personalised"]["hospitals"]  # in each warm worker
    assert adapted and set(adapted) <= set(HOSPITALS)
    assert all(0 <= h["accuracy"] <= 1 and "epsilon" in h for h in adapted.values())
    for name in HOSPITALS:  # what each hospital's policy let out: arrays, scalars
        log = consortium.site(name) / "state" / "audit.jsonl"
        entries = [json.loads(line) for line in log.read_text().splitlines()]
        assert {e["type"] for e in entries} == {"train", "evaluate"}
        for entry in entries:
            assert set(entry["metrics"]) <= METRIC_WHITELIST
            shapes = [tuple(a["shape"]) for a in entry["arrays"]]
            assert shapes in ([], [(13, 1), (1,)])
            assert {a["dtype"] for a in entry["arrays"]} <= {"float32"}
    for name in HOSPITALS:  # each hospital recorded what it sent, untampered
        check = cli(
            "hospfed-client",
            "audit",
            "verify",
            "--state-dir",
            consortium.site(name) / "state",
            check=False,
        )
        assert check.returncode == 0, check.stderr


def test_a_hospital_refuses_an_app_that_is_not_hospfeds(consortium, tmp_path):
    """A run whose Flower app ships code of its own: every hospital refuses.

    The app names hospfed's ClientApp, so without the guard the run would
    train normally; only the guard can make it fail.
    """
    from hospfed.server.control import Control

    app = tmp_path / "foreign"
    app.mkdir()
    ours = (consortium.state / "app" / "pyproject.toml").read_text()
    (app / "pyproject.toml").write_text(
        ours.replace('name = "hospfed-run"', 'name = "foreign-run"')
    )
    (app / "hospfed_patch.py").write_text("import os\n")
    out = tmp_path / "out"
    control = Control(consortium.state / "flwr")
    run_id = control.start_run(
        app, {"num-rounds": "1", "min-hospitals": "3", "out-dir": str(out)}
    )
    _wait(
        lambda: control.run_status(run_id)["status"].startswith("finished"),
        "the foreign run to end",
        300,
    )
    assert control.run_status(run_id)["status"] == "finished:failed"
    reason = json.loads((out / "metrics.json").read_text())["reason"]
    assert "round 1 (train) failed: received 0 results" in reason
    for name in HOSPITALS:  # each hospital says why, in its own log
        log = (consortium.site(name) / "state" / "supernode.log").read_text()
        assert "ships files of its own (hospfed_patch.py)" in log


def test_the_control_api_is_not_on_the_public_port(consortium):
    tls = ssl.create_default_context(cafile=str(consortium.ca))
    with httpx.Client(verify=tls, timeout=10) as client:
        for path in ("/v1/control/list-runs", "/v1/control/register-node", "/docs"):
            reply = client.post(f"https://127.0.0.1:{consortium.port}{path}", json={})
            assert reply.status_code == 404, path
    assert "refused POST /v1/control/list-runs" in consortium.daemon_log()


def test_plaintext_is_refused(consortium):
    with httpx.Client(timeout=10) as client, pytest.raises(httpx.TransportError):
        client.post(f"http://127.0.0.1:{consortium.port}/v1/fleet/get-run", json={})


def test_an_unadmitted_hospital_is_refused_and_logged(consortium, tmp_path):
    cli("hospfed-client", "node-key", "--out", tmp_path / "rogue")
    rogue = consortium.start_hospital(
        "cleveland",
        "--node-key",
        str(tmp_path / "rogue" / "node.key"),
        "--state",
        str(tmp_path / "rogue-state"),
    )
    assert rogue.wait(timeout=120) != 0
    pub = (tmp_path / "rogue" / "node.pub").read_bytes()
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key

    from hospfed.server.certs import key_fingerprint

    fingerprint = key_fingerprint(load_ssh_public_key(pub))  # type: ignore[arg-type]
    assert fingerprint in consortium.daemon_log()


def test_a_second_process_on_a_hospitals_state_is_refused(consortium):
    second = consortium.start_hospital("cleveland")
    assert second.wait(timeout=120) == 2
    err = (consortium.site("cleveland") / "start.err").read_text()
    assert "another hospfed-client start is running" in err
    assert (consortium.site("cleveland") / "state" / "worker" / "sock").exists()


def test_a_hospital_given_the_wrong_ca_does_not_connect(consortium, tmp_path):
    cli("hospfed-server", "certs", "--out", tmp_path / "other", "--host", "x.test")
    stranger = consortium.start_hospital(
        "hungary",
        "--ca",
        str(tmp_path / "other" / "ca.pem"),
        "--state",
        str(tmp_path / "s"),
    )
    assert stranger.wait(timeout=120) == 1  # the SuperNode gives up, and says why
    assert "CERTIFICATE_VERIFY_FAILED" in (tmp_path / "s" / "supernode.log").read_text()


def _pgid(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def _run_dirs(state: Path) -> set[Path]:
    return set((state / "runs").iterdir())


def _rounds_done(out: Path) -> int:
    try:
        return len(json.loads((out / "metrics.json").read_text())["rounds"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


def _submit(consortium: Consortium, *pairs: str) -> tuple[subprocess.Popen[str], Path]:
    before = _run_dirs(consortium.state)
    run = subprocess.Popen(
        [str(BIN / "hospfed-server"), "run", "--state", str(consortium.state), *pairs],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait(lambda: len(_run_dirs(consortium.state) - before) == 1, "the run directory")
    (out,) = _run_dirs(consortium.state) - before
    return run, out


def test_a_hospital_killed_mid_run_leaves_the_round_to_the_other_two(consortium):
    """With SecAgg+ (threshold 2): the survivors' shares unmask the round."""
    run, out = _submit(
        consortium,
        "num-rounds=3",
        "min-hospitals=2",
        "secure-aggregation=true",
        "reconstruction-threshold=2",
        "local-steps=10",
    )
    _wait(lambda: _rounds_done(out) >= 1, "round 1", 300)
    victim = consortium.hospitals["switzerland"]
    victim.kill()  # SIGKILL the hospital's process: its SuperNode dies with it
    assert victim.wait(timeout=30) == -signal.SIGKILL
    _, stderr = run.communicate(timeout=600)
    assert run.returncode == 0, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["completed_rounds"] == 3
    last = metrics["rounds"][-1]
    assert set(last["evaluate"]) == {"cleveland", "hungary"}
    assert "switzerland" not in last.get("train", {})
    consortium.hospitals["switzerland"] = consortium.start_hospital("switzerland")
    _wait(lambda: consortium.online() == set(HOSPITALS), "switzerland back", 120)


def test_ctrl_c_on_run_stops_the_run_and_keeps_its_rounds(consortium):
    run, out = _submit(consortium, "num-rounds=3", "min-hospitals=3", "local-steps=10")
    _wait(lambda: _rounds_done(out) >= 1, "round 1", 300)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 130
    assert "stopped (signal 2)" in stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "interrupted", metrics["reason"]
    assert "the run was stopped" in metrics["reason"]
    assert metrics["completed_rounds"] >= 1


def test_after_a_daemon_crash_run_resume_finishes_from_the_checkpoint(consortium):
    run, out = _submit(consortium, "num-rounds=3", "min-hospitals=3", "local-steps=10")
    _wait(lambda: _rounds_done(out) >= 1, "round 1", 300)
    consortium.daemon.kill()  # SIGKILL: the SuperLink dies with it (PDEATHSIG)
    consortium.daemon.wait(timeout=30)
    assert run.wait(timeout=120) != 0  # the coordinator's command says it failed
    done = _rounds_done(out)
    assert 1 <= done < 3
    stale = json.loads((consortium.state / "daemon.json").read_text())["superlink_pid"]
    consortium.daemon = _start_daemon(consortium.root, consortium.port)
    _wait(lambda: consortium.online() == set(HOSPITALS), "hospitals reconnected", 180)
    resumed = cli(
        "hospfed-server",
        "run",
        "--state",
        consortium.state,
        "--resume",
        out,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after round {done}" in resumed.stdout
    # the restart ended what the killed daemon's group left (its ServerApp)
    left = [
        p.name
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and _pgid(p) == stale
    ]
    assert not left
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["completed_rounds"] == 3
    for name in HOSPITALS:  # no completed round was trained again
        ledger = json.loads(
            (consortium.site(name) / "state" / "privacy-ledger.json").read_text()
        )
        runs: dict[str, list[int]] = {}
        for entry in ledger["entries"]:
            runs.setdefault(entry["run"], []).append(entry["round"])
        resumed_rounds = list(runs.values())[-1]
        assert min(resumed_rounds) == done + 1, (name, runs)
        assert max(resumed_rounds) == 3


def test_a_revoked_hospital_can_no_longer_connect(consortium):
    unknown = cli(
        "hospfed-server", "revoke", "va", "--state", consortium.state, check=False
    )
    assert unknown.returncode == 2 and "not an admitted hospital" in unknown.stderr
    done = cli("hospfed-server", "revoke", "hungary", "--state", consortium.state)
    assert "revoked hungary" in done.stdout
    listing = json.loads(
        cli("hospfed-server", "hospitals", "--state", consortium.state).stdout
    )
    assert {r["hospital"]: r["status"] for r in listing}["hungary"] == "revoked"
    old = consortium.hospitals.pop("hungary")
    old.send_signal(signal.SIGTERM)
    old.wait(timeout=60)
    again = consortium.start_hospital("hungary")
    assert again.wait(timeout=120) == 1  # the SuperLink refuses its key now
    log = (consortium.site("hungary") / "state" / "supernode.log").read_text()
    assert "2004" in log or "Failed to activate" in log


def test_sigterm_stops_every_process_cleanly(consortium):
    tree = {
        p
        for proc in [*consortium.hospitals.values(), consortium.daemon]
        for p in descendants(proc.pid)
    }
    assert tree, "expected Flower's processes under the daemon and the hospitals"
    for proc in consortium.hospitals.values():
        proc.send_signal(signal.SIGTERM)
    for proc in consortium.hospitals.values():
        assert proc.wait(timeout=60) == 143
    consortium.daemon.send_signal(signal.SIGTERM)
    assert consortium.daemon.wait(timeout=60) == 143
    time.sleep(2)
    assert not [pid for pid, started in tree if is_alive(pid, started)]
    assert not (consortium.state / "daemon.json").exists()
