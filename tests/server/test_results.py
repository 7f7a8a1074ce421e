import json
import os

import numpy as np
import pytest

from hospfed.server.history import Declined, RoundRecord, RunHistory
from hospfed.server.results import load_weights, write_results


def history():
    h = RunHistory()
    for r in (1, 2):
        rec = h.round(r)
        rec.evaluate["a"] = {
            "accuracy": 0.5 + r / 10,
            "auc": float("nan"),
            "loss": 0.7,
            "num_examples": 10.0,
        }
        rec.evaluate["b"] = {
            "accuracy": 0.6,
            "auc": 0.7,
            "loss": 0.6,
            "num_examples": 30.0,
        }
    return h


def test_results_directory_has_metrics_model_and_curves(tmp_path):
    weights = [np.arange(6, dtype=np.float32).reshape(3, 2), np.ones(2, np.float32)]
    write_results(tmp_path / "out", history=history(), weights=weights, run={"seed": 1})
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "curves.png",
        "metrics.json",
        "model-card.md",
        "model.npz",
    ]
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["round"] for r in metrics["rounds"]] == [1, 2]
    assert metrics["final"]["evaluate"]["a"]["accuracy"] == pytest.approx(0.7)
    assert metrics["final"]["evaluate"]["a"]["auc"] is None
    assert metrics["final"]["mean"]["accuracy"] == pytest.approx(0.65)
    got = load_weights(out / "model.npz")
    assert all(np.array_equal(a, b) for a, b in zip(got, weights, strict=True))
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.npz").mkdir()  # refused before any file is renamed
    (out / "metrics.json").write_text("old")
    with pytest.raises(OSError, match="model.npz"):
        write_results(out, history=history(), weights=[np.zeros(2)], run={})
    assert sorted(os.listdir(out)) == ["metrics.json", "model.npz"]
    assert (out / "metrics.json").read_text() == "old"


def test_metrics_report_each_hospitals_epsilon_and_who_was_not_private(tmp_path):
    h = history()
    for server_round, spent in ((1, 0.3), (2, 0.6)):
        h.rounds[server_round - 1].add_training("a", 0.5, 10, epsilon=spent)
        h.rounds[server_round - 1].add_training("b", 0.5, 30)
    write_results(tmp_path, history=h, weights=[np.ones(2)], run={})
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["privacy"] == {
        "max_epsilon": 0.6,
        "epsilon": {"a": 0.6},
        "noise_multiplier": {},
        "non_private": ["b"],
        "declined": {},
        "never_trained": [],
        "targets": None,
    }
    assert [r["epsilon"]["max"] for r in metrics["rounds"]] == [0.3, 0.6]


def test_hospitals_that_declined_are_named_with_reason_even_if_never_trained(
    tmp_path,
):
    h = history()
    for record, spent in zip(h.rounds, (0.3, 0.6), strict=True):
        record.add_training("a", 0.5, 10, epsilon=spent, noise_multiplier=2.5)
        record.declined = [Declined(reason="privacy budget: spent", hospital="va")]
    failed = RoundRecord(3, declined=[Declined(reason="gone", node=12)])
    write_results(
        tmp_path,
        history=h,
        weights=[np.ones(2)],
        run={"num_rounds": 5},
        status="failed",
        reason="round 3 (train) failed",
        failed_round=failed,
        privacy_targets={"epsilon": 1.0, "delta": 1e-3, "clip_norm": 1.0},
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (metrics["status"], metrics["reason"]) == (
        "failed",
        "round 3 (train) failed",
    )
    assert (metrics["completed_rounds"], metrics["planned_rounds"]) == (2, 5)
    privacy = metrics["privacy"]
    assert privacy["declined"] == {
        "va": {"rounds": [1, 2], "reason": "privacy budget: spent"},
        "node 12": {"rounds": [3], "reason": "gone"},
    }
    assert privacy["never_trained"] == ["node 12", "va"]
    assert privacy["noise_multiplier"] == {"a": 2.5}
    assert privacy["targets"] == {"epsilon": 1.0, "delta": 1e-3, "clip_norm": 1.0}
    assert metrics["rounds"][0]["declined"] == [
        {"hospital": "va", "reason": "privacy budget: spent"}
    ]
    assert metrics["failed_round"]["round"] == 3


def test_a_write_without_weights_removes_an_earlier_runs_model_and_curves(tmp_path):
    write_results(tmp_path, history=history(), weights=[np.ones(2)], run={})
    assert (tmp_path / "curves.png").exists()
    write_results(tmp_path, history=RunHistory(), weights=None, run={}, status="failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "metrics.json",
        "model-card.md",
    ]
    write_results(
        tmp_path, history=history(), weights=[np.ones(2)], run={}, curves=False
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "metrics.json",
        "model-card.md",
        "model.npz",
    ]


def test_versions_are_read_without_importing_the_heavy_packages():
    import subprocess
    import sys

    code = (
        "import sys; from hospfed.server.results import versions; v = versions(); "
        "print(v['flwr'], v['numpy'] is not None, 'tensorflow' in sys.modules, "
        "'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    flwr, has_numpy, tf, torch = done.stdout.split()
    assert flwr.startswith("1.42") and has_numpy == "True"
    assert (tf, torch) == ("False", "False")


def test_the_model_card_copies_what_metrics_json_says(tmp_path):
    from hospfed.server.config import RunConfig
    from hospfed.server.results import describe_run

    h = history()
    for server_round, spent in ((1, 0.3), (2, 0.6)):
        h.rounds[server_round - 1].add_training("a", 0.5, 10, epsilon=spent)
        h.rounds[server_round - 1].add_training("b", 0.5, 30)
    run = describe_run(
        RunConfig.from_mapping({"num-rounds": "2", "strategy": "fedyogi"})
    )
    write_results(tmp_path, history=h, weights=[np.ones(2)], run=run)
    card = (tmp_path / "model-card.md").read_text()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert "Status: **complete**, 2 of 2 rounds." in card
    assert run["data_schema_fingerprint"][:16] in card
    assert "Strategy fedyogi, 2 rounds" in card
    assert "Epsilon spent in this run: a 0.600; largest 0.600." in card
    assert "Trained without DP: b." in card
    assert "SecAgg+): off" in card
    assert "| a | 10 | 10 | 0.7000 | - | 0.7000 |" in card  # NaN AUC shown as -
    mean = metrics["final"]["mean"]["accuracy"]
    assert f"| *mean* | | | {mean:.4f} |" in card
    assert "no validation split" in card.lower()


def test_a_run_without_rounds_still_has_a_card(tmp_path):
    write_results(
        tmp_path,
        history=RunHistory(),
        weights=None,
        run={},
        status="failed",
        reason="round 1 (train) failed",
    )
    card = (tmp_path / "model-card.md").read_text()
    assert "**failed**, 0 of None rounds (round 1 (train) failed)" in card
    assert "No round completed." in card
