import json
import os

import numpy as np
import pytest

from hospfed.server.history import RunHistory
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
        "non_private": ["b"],
    }
    assert [r["epsilon"]["max"] for r in metrics["rounds"]] == [0.3, 0.6]
