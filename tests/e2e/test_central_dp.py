"""End to end: client-level central DP in the real simulation (slow)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hospfed.common.rdp import DpMechanism, epsilon_spent

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


def heart(*args):
    done = subprocess.run(
        [str(BIN / "hospfed-sim"), "heart", "--strategy", "fedavg", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def epsilon(noise, rounds):
    mechanism = DpMechanism(noise_multiplier=noise, sample_rate=1.0, steps=rounds)
    return epsilon_spent([mechanism], 1e-3)


def test_fixed_clipping_reports_the_central_epsilon_everywhere(tmp_path):
    out = tmp_path / "run"
    stdout = heart(
        *("--central-dp", "fixed", "--central-noise-multiplier", "1.5"),
        *("--rounds", "2", "--no-secure-aggregation", "--out", str(out)),
    )
    expected = [epsilon(1.5, 1), epsilon(1.5, 2)]
    assert "round   2/2" in stdout
    assert f"central epsilon {expected[1]:.2f}" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    rounds = [r["central_dp"] for r in metrics["rounds"]]
    assert [r["epsilon"] for r in rounds] == pytest.approx(expected, rel=1e-9)
    assert all(r["noise_std"] == pytest.approx(1.5 * 0.5 / 4) for r in rounds)
    central = metrics["privacy"]["central"]
    assert central["epsilon"] == pytest.approx(expected[1], rel=1e-9)
    assert (central["mechanism"], central["sample_rate"]) == ("fixed clipping", 1)
    assert all(
        row["num_examples"] == 1 for row in metrics["rounds"][-1]["train"].values()
    )
    card = (out / "model-card.md").read_text()
    assert f"epsilon {expected[1]:.3f} at delta 0.001 over 2 rounds" in card


def test_adaptive_clipping_under_secure_aggregation_resumes_its_accounting(
    tmp_path,
):
    out = tmp_path / "run"
    heart("--central-dp", "adaptive", "--rounds", "1", "--out", str(out))
    stdout = heart("--resume", str(out), "--rounds", "2")
    assert f"central epsilon {epsilon(1.0, 2):.2f}" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "complete"
    assert metrics["run"]["secure_aggregation"]["max_weight"] == 1.0
    first, second = (r["central_dp"] for r in metrics["rounds"])
    assert second["clipping_norm"] == pytest.approx(first["next_clipping_norm"])
    assert second["epsilon"] == pytest.approx(epsilon(1.0, 2), rel=1e-9)
    assert metrics["privacy"]["central"]["rounds"] == 2
