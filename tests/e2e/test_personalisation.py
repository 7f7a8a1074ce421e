"""End to end: personalisation under DP, scored on validation then test (slow).

``hospfed-sim heart`` with a 2-layer model, DP-SGD at every hospital on a
mixed Keras/PyTorch federation, a validation split, and each hospital
fine-tuning the last layer after the last round: every round before the
last scores validation, the last scores test, each hospital reports its
global and personalised scores, and its personal DP-SGD is one more entry
in the same ledger, inside the same budget.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hospfed.common.datasets.heart import HOSPITALS

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


def test_private_personalisation_spends_from_the_same_ledger(tmp_path):
    out, state = tmp_path / "run", tmp_path / "state"
    args = [
        str(BIN / "hospfed-sim"), "heart", "--rounds", "2", "--local-steps", "10",
        "--hidden", "8", "--backend", "mixed", "--epsilon", "1",
        "--state-dir", str(state), "--no-secure-aggregation",
        "--validation-fraction", "0.25", "--evaluate-on", "validation-then-test",
        "--personalise", "finetune", "--personal-steps", "20", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "round   1/2  validation accuracy" in done.stdout
    assert "| personalised mean" in done.stdout  # the last round's line
    metrics = json.loads((out / "metrics.json").read_text())
    first, last = metrics["rounds"]
    assert first["split"] == "validation" and "personalised" not in first
    assert "split" not in last  # the test set, read once
    adapted = last["personalised"]["hospitals"]
    assert set(adapted) == set(HOSPITALS) == set(last["evaluate"])
    for hospital in HOSPITALS:
        assert (
            adapted[hospital]["num_examples"]
            == last["evaluate"][hospital]["num_examples"]
        )  # the same rows, scored twice
        ledger = json.loads((state / hospital / "privacy-ledger.json").read_text())
        steps = [e["steps"] for e in ledger["entries"]]
        assert steps == [10, 10, 20]  # two rounds, then the personal training
        spent = adapted[hospital]["epsilon"]
        assert last["train"][hospital]["epsilon"] < spent <= 1.0
    assert metrics["privacy"]["max_epsilon"] <= 1.0
    assert metrics["run"]["personal"]["method"] == "finetune"
    card = (out / "model-card.md").read_text()
    assert "personalised" in card.lower()
