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
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["round"] for r in metrics["rounds"]] == [1, 2, 3]
    hospitals = {"cleveland", "hungary", "switzerland", "va"}
    for record in metrics["rounds"]:
        assert set(record["evaluate"]) == hospitals == set(record["train"])
        assert record["evaluate"]["cleveland"]["num_examples"] == 104
        for key in ("accuracy", "auc", "loss"):
            assert key in record["weighted"] and key in record["mean"]
    assert metrics["run"]["strategy"] == "fedyogi" and metrics["run"]["seed"] == 1
    weights = load_weights(out / "model.npz")
    assert [w.shape for w in weights] == [(13, 1), (1,)]
    assert np.all(np.isfinite(weights[0]))
    assert (out / "curves.png").stat().st_size > 10_000
    # The model learns: loss falls from the first round to the last.
    assert (
        metrics["rounds"][-1]["weighted"]["loss"]
        < metrics["rounds"][0]["weighted"]["loss"]
    )


# The real command, with the fourth virtual hospital pointed at data that does
# not exist: its ClientApp fails in the worker, as a hospital with a missing
# data file would.
FAILING_RUN = textwrap.dedent("""
    import functools
    from hospfed.simulations import cli
    cli.run_federated = functools.partial(
        cli.run_federated, hospitals=("cleveland", "hungary", "switzerland", "nowhere")
    )
    cli.main(["heart", "--rounds", "2", "--out", "OUT"])
""")


def test_a_round_with_a_failed_hospital_fails_the_command_loudly(tmp_path):
    script = FAILING_RUN.replace("OUT", str(tmp_path / "out"))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 3, done.stdout + done.stderr[-3000:]
    # hospfed's own output is this one line; Ray may add warnings of its own.
    assert done.stderr.splitlines()[-1] == (
        "hospfed-sim: error: round 1 (train) failed: received 3 results, needed at "
        "least 4; 1 failures: unknown hospital 'nowhere'; the embedded federation "
        "has cleveland, hungary, switzerland, va"
    )
    assert "Traceback" not in done.stderr
    assert "Traceback" not in done.stdout
    assert not (tmp_path / "out").exists()


def test_simulation_driver_does_not_import_tensorflow():
    code = (
        "import sys; from hospfed.simulations.flower import flower_run_simulation; "
        "flower_run_simulation(); import hospfed.server.app; "
        "print('tensorflow' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
