"""End to end: ``hospfed-sim tune`` chooses on validation and never reads a test row.

The four heart hospitals are prepared as encrypted datasets; a copy of each
has its test rows poisoned (every input column shuffled among the test
rows, so each carries other patients' values; labels untouched, so the
stratified splits stay where they are). Tuning on the clean and on the poisoned copies must record the same
validation score for every candidate, bit for bit, and choose the same
settings; the chosen settings' final test scores must differ (the poison is
real and the final runs do read the test rows, once). The test rows are
found with scikit-learn directly, and checked against the pipeline's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from hospfed.client.features import encode_rows
from hospfed.client.vault import load_key, read_encrypted_frame, write_encrypted_frame
from hospfed.common.datasets import FED_HEART_TASK
from hospfed.common.datasets.heart import HOSPITALS
from hospfed.simulations.heart import prepare_sites
from hospfed.simulations.workspace import Workspace

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


def _private_copy(data: bytes, path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def _test_rows(frame):
    """Index labels of the task's test rows, computed without the pipeline."""
    task = FED_HEART_TASK
    columns = [f.column for f in task.features] + [task.label.column]
    complete = frame[columns].dropna()
    labels = complete[task.label.column].isin(task.label.positive).to_numpy()
    counts = np.unique(labels, return_counts=True)[1]
    stratified = len(counts) > 1 and counts.min() > 2  # the task's rule
    _, test = train_test_split(
        np.arange(len(complete)),
        train_size=task.split.train_fraction,
        random_state=task.split.seed,
        stratify=labels if stratified else None,
    )
    return complete.index[np.sort(test)]


def _poison(frame, rows):
    """Shuffle every input column independently among the test rows.

    The values stay valid for the schema (ranges, levels), but each test row
    now carries other patients' measurements: any score on it changes.
    """
    rng = np.random.default_rng(99)
    poisoned = frame.copy()
    for feature in FED_HEART_TASK.features:
        values = poisoned.loc[rows, feature.column].to_numpy()
        poisoned.loc[rows, feature.column] = values[rng.permutation(len(values))]
    return poisoned


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """Clean and poisoned encrypted copies of the four hospitals, with keys."""
    root = tmp_path_factory.mktemp("tune")
    sites = {}
    with Workspace.create() as workspace:
        for site in prepare_sites(workspace, seed=0):
            key_file = root / "keys" / f"{site.hospital}.key"
            _private_copy(site.key_file.read_bytes(), key_file)
            clean = root / "clean" / f"{site.hospital}.hfd"
            _private_copy(site.data.read_bytes(), clean)
            sites[site.hospital] = (clean, key_file)
    for hospital, (clean, key_file) in sites.items():
        key = load_key(key_file)
        frame, metadata = read_encrypted_frame(clean, key)
        rows = _test_rows(frame)
        encoded = encode_rows(frame, FED_HEART_TASK, hospital)
        assert list(encoded.index[encoded.test]) == list(rows)  # the same test rows
        poisoned = root / "poisoned" / f"{hospital}.hfd"
        poisoned.parent.mkdir(mode=0o700, exist_ok=True)
        write_encrypted_frame(_poison(frame, rows), poisoned, key, metadata=metadata)
    return root, sites


def _tune(root: Path, kind: str, sites, out: Path) -> dict:
    args = [str(BIN / "hospfed-sim"), "tune", "--task", "fed-heart-disease"]
    for hospital, (_, key_file) in sites.items():
        args += ["--site", f"{hospital}={root / kind / hospital}.hfd"]
        args += ["--key", f"{hospital}={key_file}"]
    args += [
        "--strategy", "fedyogi", "--grid", "server-learning-rate=0.003,0.1",
        "--seeds", "0", "--rounds", "1", "--local-steps", "10", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "chosen on validation" in done.stdout
    return json.loads((out / "tune.json").read_text())


def test_tuning_never_reads_a_test_set(datasets, tmp_path):
    root, sites = datasets
    clean = _tune(root, "clean", sites, tmp_path / "clean")
    dirty = _tune(root, "poisoned", sites, tmp_path / "poisoned")
    assert clean["status"] == dirty["status"] == "complete"
    assert [c["scores"] for c in clean["candidates"]] == [
        c["scores"] for c in dirty["candidates"]
    ]
    assert clean["chosen"] == dirty["chosen"]
    assert clean["chosen_on"]["split"] == "validation"
    assert clean["test"]["global"]["mean"] != dirty["test"]["global"]["mean"]
    # every candidate run scored validation only; the final run, test once
    out = tmp_path / "clean"
    for run in (out / "runs").iterdir():
        metrics = json.loads((run / "metrics.json").read_text())
        splits = [r.get("split", "test") for r in metrics["rounds"]]
        assert splits == ["validation" if run.name.startswith("candidate") else "test"]
    chosen = (out / "chosen.toml").read_text()
    assert "server-learning-rate" in chosen and "fedyogi" in chosen
    assert set(HOSPITALS) == set(clean["test"]["seeds"][0]["hospitals"])
