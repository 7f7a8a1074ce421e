"""End to end: the real Flower simulation of the four hospitals (slow)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from hospfed.server.results import load_weights

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


def test_heart_simulation_writes_every_round_of_every_hospital(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(
        [
            str(BIN / "hospfed-sim"),
            "heart",
            "--rounds",
            "3",
            "--strategy",
            "fedyogi",
            "--seed",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "round   3/3" in done.stdout
    assert "NON-PRIVATE: no differential privacy" in done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["round"] for r in metrics["rounds"]] == [1, 2, 3]
    hospitals = {"cleveland", "hungary", "switzerland", "va"}
    for record in metrics["rounds"]:
        assert set(record["evaluate"]) == hospitals == set(record["train"])
        assert record["evaluate"]["cleveland"]["num_examples"] == 104
        for key in ("accuracy", "auc", "loss"):
            assert key in record["weighted"] and key in record["mean"]
    assert metrics["run"]["strategy"] == "fedyogi" and metrics["run"]["seed"] == 1
    assert metrics["privacy"]["max_epsilon"] is None
    assert set(metrics["privacy"]["non_private"]) == hospitals
    weights = load_weights(out / "model.npz")
    assert [w.shape for w in weights] == [(13, 1), (1,)]
    assert np.all(np.isfinite(weights[0]))
    assert (out / "curves.png").stat().st_size > 10_000
    # The model learns: loss falls from the first round to the last.
    assert (
        metrics["rounds"][-1]["weighted"]["loss"]
        < metrics["rounds"][0]["weighted"]["loss"]
    )


# The real command, with one byte of VA's encrypted dataset flipped after
# prepare: its ClientApp fails in the worker, as a hospital whose file was
# damaged on disk would.
FAILING_RUN = textwrap.dedent("""
    from hospfed.simulations import cli

    def damaged(*args, **kwargs):
        sites = prepare_sites(*args, **kwargs)
        data = bytearray(sites[-1].data.read_bytes())
        data[200] ^= 1
        sites[-1].data.write_bytes(bytes(data))
        return sites

    prepare_sites, cli.prepare_sites = cli.prepare_sites, damaged
    cli.main(["heart", "--rounds", "2", "--out", "OUT"])
""")


def test_a_round_with_a_failed_hospital_fails_the_command_loudly(tmp_path):
    script = FAILING_RUN.replace("OUT", str(tmp_path / "out"))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 3, done.stdout + done.stderr[-3000:]
    # hospfed's own output is this one line; Ray may add warnings of its own.
    last = done.stderr.splitlines()[-1]
    assert last.startswith(
        "hospfed-sim: error: round 1 (train) failed: received 3 results, needed at "
        "least 4; 1 failures: "
    ), last
    assert "site.hfd: chunk 0 of 1 failed authentication" in last, last
    assert last.endswith(f"; the reason is recorded in {tmp_path / 'out'}/metrics.json")
    assert "Traceback" not in done.stderr
    assert "Traceback" not in done.stdout
    # Nothing was learned, so no model; but the run says why it failed.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "metrics.json",
        "model-card.md",
    ]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert (metrics["status"], metrics["completed_rounds"]) == ("failed", 0)
    assert metrics["reason"].startswith("round 1 (train) failed")
    [(_name, declined)] = metrics["privacy"]["declined"].items()
    assert "failed authentication" in declined["reason"]
    assert declined["rounds"] == [1]


def test_simulation_driver_does_not_import_tensorflow():
    code = (
        "import sys; from hospfed.simulations.flower import flower_run_simulation; "
        "flower_run_simulation(); import hospfed.server.app; "
        "print('tensorflow' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


def sim(*args):
    return subprocess.run(
        [str(BIN / "hospfed-sim"), "heart", *args],
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_mixed_private_federation_spends_its_budget_once(tmp_path):
    state = tmp_path / "state"
    common = ["--rounds", "2", "--epsilon", "1", "--state-dir", str(state)]
    first = sim(*common, "--backend", "mixed", "--out", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "DP-SGD epsilon 1, delta 0.001" in first.stdout
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    spent = metrics["privacy"]["epsilon"]
    assert set(spent) == {"cleveland", "hungary", "switzerland", "va"}
    assert all(0.5 < e <= 1.0 for e in spent.values()), spent
    assert metrics["privacy"]["max_epsilon"] == max(spent.values())
    assert metrics["privacy"]["non_private"] == []
    first_round = metrics["rounds"][0]["epsilon"]
    assert 0 < first_round["max"] < metrics["privacy"]["max_epsilon"]
    # A new run on the same hospitals (same keys, same ledgers, in the state
    # dir), asking for epsilon 0.5, finds more than that spent: every
    # hospital declines, the run fails loudly, learns nothing, says why.
    second = sim(
        "--rounds", "2", "--epsilon", "0.5", "--state-dir", str(state),
        "--out", str(tmp_path / "b"),
    )  # fmt: skip
    assert second.returncode == 3, second.stdout + second.stderr[-3000:]
    last = second.stderr.splitlines()[-1]
    assert last.startswith("hospfed-sim: error: round 1 (train) failed")
    assert "privacy budget: epsilon" in last and "this hospital declines it" in last
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "metrics.json",
        "model-card.md",
    ]
    failed = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert failed["status"] == "failed" and failed["completed_rounds"] == 0
    declined = failed["privacy"]["declined"]
    assert len(declined) == 4 and len(failed["privacy"]["never_trained"]) == 4
    assert all("privacy budget" in d["reason"] for d in declined.values())
    assert all(d["rounds"] == [1] for d in declined.values())
    ledger = json.loads((state / "va" / "privacy-ledger.json").read_text())
    assert [e["round"] for e in ledger["entries"]] == [1, 2]
