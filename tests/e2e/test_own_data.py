"""End to end: a consortium's own study (not heart), each label kind (slow).

A made-up three-centre study with numeric, binary and text-categorical
features and identifiers (MRNs): schema file + task file -> each hospital
prepares its own export -> ``hospfed-sim run`` -> ``hospfed-client
predict`` at a hospital. The federated model must beat a constant
predictor on the hospitals' test sets.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hospfed.common.task import dump_task
from hospfed.simulations.synthetic import synthetic_rows
from tests.simulations.own_tasks import own_task, study_rows, study_schema

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
SITES = ("north", "south", "east")


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def _study(tmp_path: Path, kind: str) -> tuple[Path, Path, Path]:
    schema = tmp_path / f"{kind}.schema.toml"
    schema.write_text(study_schema(kind))
    task = tmp_path / f"{kind}.task.toml"
    dump_task(own_task(kind), task)
    table = tmp_path / f"{kind}.csv"
    study_rows(kind, 2400, seed=1, sites=SITES).to_csv(table, index=False)
    return schema, task, table


def _sim(*args: str) -> dict:
    done = _run(str(BIN / "hospfed-sim"), "run", *args)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "round   3/3" in done.stdout
    out = Path(args[args.index("--out") + 1])
    return json.loads((out / "metrics.json").read_text())


def _majority_share(values) -> float:
    _, counts = np.unique(np.asarray(values), return_counts=True)
    return float(counts.max() / counts.sum())


def test_binary_study_from_site_files_then_predict_at_a_hospital(tmp_path):
    schema, task, table = _study(tmp_path, "binary")
    rows = list(csv.DictReader(table.open()))
    header = list(rows[0])
    for site in SITES:  # each hospital's own export
        with (tmp_path / f"{site}.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, header)
            writer.writeheader()
            writer.writerows(r for r in rows if r["site"] == site)
    out = tmp_path / "run"
    metrics = _sim(
        "--task", str(task), "--schema", str(schema),
        *(a for s in SITES for a in ("--site", f"{s}={tmp_path / s}.csv")),
        "--rounds", "3", "--learning-rate", "0.05", "--out", str(out),
    )  # fmt: skip
    final = metrics["rounds"][-1]
    assert set(final["evaluate"]) == set(SITES)
    assert metrics["run"]["task"] == "ward-binary"
    assert metrics["run"]["secure_aggregation"] is not None  # on by default
    majority = _majority_share([r["outcome"] for r in rows])
    assert final["mean"]["accuracy"] > majority + 0.05
    assert final["mean"]["auc"] > 0.75
    card = (out / "model-card.md").read_text()
    assert "ward-binary" in card
    # At a hospital: prepare its export, then apply the run's model.
    key, hfd = tmp_path / "north.key", tmp_path / "north.hfd"
    client = str(BIN / "hospfed-client")
    assert _run(client, "keygen", "--out", str(key)).returncode == 0
    done = _run(
        client, "prepare", str(tmp_path / "north.csv"), "--schema", str(schema),
        "--key", str(key), "--out", str(hfd),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    predictions = tmp_path / "north-predictions.csv"
    done = _run(
        client, "predict", str(hfd), "--model", str(out), "--task", str(task),
        "--key", str(key), "--out", str(predictions),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = predictions.read_text()
    written = list(csv.DictReader(text.splitlines()))
    north = [r for r in rows if r["site"] == "north"]
    assert len(written) == len(north)
    assert all(0.0 <= float(r["probability"]) <= 1.0 for r in written)
    assert not any(r["mrn"] in text for r in north)  # pseudonyms only
    # The hospital's own membership-inference audit of the run's model.
    report = tmp_path / "north-audit.json"
    done = _run(
        client, "privacy-check", str(hfd), "--model", str(out), "--task", str(task),
        "--key", str(key), "--out", str(report),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "attack ROC AUC" in done.stdout
    assert "would detect an AUC" in done.stdout or "LEAKAGE" in done.stdout
    audit = json.loads(report.read_text())
    assert audit["members"] + audit["non_members"] == len(north)
    assert not any(r["mrn"] in done.stdout + report.read_text() for r in north)
    assert "Membership-inference audit" in card and "| north | | | |" in card


def test_multiclass_study_from_one_table_split_by_site(tmp_path):
    schema, task, table = _study(tmp_path, "multiclass")
    metrics = _sim(
        "--task", str(task), "--schema", str(schema), "--data", str(table),
        "--split-by", "site", "--rounds", "3", "--learning-rate", "0.05",
        "--no-secure-aggregation", "--out", str(tmp_path / "run"),
    )  # fmt: skip
    final = metrics["rounds"][-1]
    assert set(final["evaluate"]) == set(SITES)
    outcomes = [r["outcome"] for r in csv.DictReader(table.open())]
    assert final["mean"]["accuracy"] > _majority_share(outcomes) + 0.05
    assert final["mean"]["macro_f1"] > 0.5
    assert metrics["run"]["model"]["output"] == "multiclass"
    assert metrics["run"]["model"]["num_classes"] == 3


def test_continuous_task_on_synthetic_virtual_hospitals(tmp_path):
    task = tmp_path / "continuous.task.toml"
    dump_task(own_task("continuous"), task)
    metrics = _sim(
        "--task", str(task), "--synthetic", "1500", "--hospitals", "3",
        "--partition", "linear", "--rounds", "3", "--learning-rate", "0.05",
        "--no-secure-aggregation", "--out", str(tmp_path / "run"),
    )  # fmt: skip
    final = metrics["rounds"][-1]
    sizes = sorted(m["num_examples"] for m in final["evaluate"].values())
    assert sizes[0] < sizes[1] < sizes[2]  # linear size skew
    label = synthetic_rows(own_task("continuous"), 1500, seed=0)["outcome"]
    constant_rmse = float(label.std(ddof=0))  # predicting the mean
    assert final["mean"]["rmse"] < 0.75 * constant_rmse
    assert final["mean"]["accuracy"] is None


def test_bad_flags_are_refused_in_one_line(tmp_path):
    _, task, table = _study(tmp_path, "binary")
    cases = [
        (("--task", str(task)), "no way of giving the hospitals"),
        (
            ("--task", str(task), "--data", str(table), "--hospitals", "3",
             "--synthetic", "100"),
            "more than one way",
        ),
        (
            ("--task", str(task), "--synthetic", "300", "--hospitals", "3",
             "--split-by", "site"),
            "--split-by has no effect",
        ),
        (
            ("--task", str(task), "--synthetic", "300", "--hospitals", "3",
             "--alpha", "0.3"),
            "--alpha applies to --partition dirichlet",
        ),
        (
            ("--task", str(task), "--data", str(table), "--split-by", "site",
             "--schema", "fed-heart-disease-raw"),
            "de-identifies to 'fed-heart-disease'",
        ),
        (
            ("--task", str(task), "--synthetic", "300", "--hospitals", "4",
             "--fraction-fit", "0.5", "--min-hospitals", "3"),
            "needs 3 hospitals per round, more than the 2 sampled",
        ),
    ]  # fmt: skip
    for args, message in cases:
        done = _run(str(BIN / "hospfed-sim"), "run", *args, timeout=120)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_federation_wide_standardisation_from_sums_only(tmp_path):
    task = tmp_path / "federation.task.toml"
    dump_task(own_task("binary", standardise="federation"), task)
    out = tmp_path / "run"
    metrics = _sim(
        "--task", str(task), "--synthetic", "1500", "--hospitals", "3",
        "--partition", "linear", "--rounds", "3", "--learning-rate", "0.05",
        "--no-secure-aggregation", "--out", str(out),
    )  # fmt: skip
    scaling = metrics["run"]["scaling"]
    assert scaling["hospitals"] == ["site-000", "site-001", "site-002"]
    # Inputs: age ~ N(50, 10), lactate ~ N(50, 10), smoker, ward (2 one-hot).
    assert abs(scaling["mean"][0] - 50) < 1.5 and abs(scaling["std"][0] - 10) < 1.0
    assert abs(scaling["mean"][2] - 0.5) < 0.05  # smoker: Bernoulli(0.5)
    rows = synthetic_rows(own_task("binary"), 1500, seed=0)["outcome"]
    assert metrics["rounds"][-1]["mean"]["accuracy"] > _majority_share(rows) + 0.05
    assert "federation" in (out / "model-card.md").read_text()
    # A hospital training with DP does not send exact sums: refused up front.
    done = _run(
        str(BIN / "hospfed-sim"), "run", "--task", str(task), "--synthetic", "600",
        "--hospitals", "2", "--rounds", "1", "--epsilon", "1",
        "--no-secure-aggregation", "--out", str(tmp_path / "private"),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr  # refused before any work
    assert "private hospitals refuse; drop --epsilon" in done.stderr


def test_record_level_dp_on_own_data_spends_within_the_budget(tmp_path):
    task = tmp_path / "binary.task.toml"
    dump_task(own_task("binary"), task)
    metrics = _sim(
        "--task", str(task), "--synthetic", "1200", "--hospitals", "3",
        "--rounds", "3", "--learning-rate", "0.05", "--epsilon", "1",
        "--backend", "mixed", "--out", str(tmp_path / "run"),
    )  # fmt: skip
    privacy = metrics["privacy"]
    assert privacy["targets"]["epsilon"] == 1.0
    assert 0.0 < privacy["max_epsilon"] <= 1.0
    assert set(metrics["rounds"][-1]["epsilon"]) == {
        "max",
        *metrics["rounds"][-1]["train"],
    }
    assert metrics["run"]["settings"]["backends"] == {
        "site-000": "keras", "site-001": "torch", "site-002": "torch"
    }  # fmt: skip
