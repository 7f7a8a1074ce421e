"""The trained model at the hospital: evaluate on its own test split, predict by pseudonym."""

import json

import numpy as np
import pandas as pd
import pytest

from hospfed.client.backends import get_backend
from hospfed.client.cli import main
from hospfed.client.predict import forward
from hospfed.common.datasets import FED_HEART_TASK
from hospfed.common.model import ModelSpec, initial_weights


def run(capsys, *argv):
    with pytest.raises(SystemExit) as stop:
        main(list(argv))
    out, err = capsys.readouterr()
    return stop.value.code, out, err


@pytest.mark.parametrize(
    "spec",
    [
        ModelSpec(7, hidden=(5,), activation="tanh"),
        ModelSpec(
            7, hidden=(4, 3), activation="relu", output="multiclass", num_classes=3
        ),
        ModelSpec(7, hidden=(5,), activation="sigmoid", output="continuous"),
    ],
)
def test_the_numpy_forward_pass_equals_the_keras_backend(spec):
    weights = initial_weights(spec, 4)
    keras = get_backend("keras", spec)
    keras.set_weights(weights)
    x = np.random.default_rng(0).standard_normal((40, 7)).astype(np.float32)
    np.testing.assert_allclose(forward(spec, weights, x), keras.predict(x), atol=1e-5)


@pytest.fixture(scope="module")
def hospital(tmp_path_factory):
    """A prepared VA dataset and a results directory holding a trained model."""
    base = tmp_path_factory.mktemp("hospital")
    key, raw, data = base / "site.key", base / "raw.csv", base / "site.hfd"
    for argv in (
        ("keygen", "--out", str(key)),
        ("demo-export", "--hospital", "va", "--out", str(raw)),
        ("prepare", str(raw), "--key", str(key), "--out", str(data)),
    ):
        with pytest.raises(SystemExit) as stop:
            main(list(argv))
        assert stop.value.code == 0
    spec = ModelSpec(len(FED_HEART_TASK.input_names))
    run_dir = base / "run"
    run_dir.mkdir()
    weights = initial_weights(spec, 0)
    np.savez(run_dir / "model.npz", **{f"w{i}": w for i, w in enumerate(weights)})
    model = {"input_dim": spec.input_dim, "hidden": [], "activation": "relu"}
    document = {"status": "complete", "run": {"model": model}}
    (run_dir / "metrics.json").write_text(json.dumps(document))
    return key, raw, data, run_dir


def test_evaluate_scores_the_model_on_the_hospitals_test_split(hospital, capsys):
    key, _, data, run_dir = hospital
    code, out, err = run(
        capsys, "evaluate", str(data), "--model", str(run_dir), "--key", str(key)
    )
    assert code == 0, err
    assert "accuracy" in out and "auc" in out and "test rows" in out
    assert "rmse" not in out


def test_predict_writes_one_probability_per_row_keyed_by_pseudonym(
    hospital, capsys, tmp_path
):
    key, raw, data, run_dir = hospital
    out_csv = tmp_path / "predictions.csv"
    code, out, err = run(
        capsys,
        "predict",
        str(data),
        "--model",
        str(run_dir),
        "--key",
        str(key),
        "--out",
        str(out_csv),
    )
    assert code == 0, err
    table = pd.read_csv(out_csv, dtype={"mrn": str})
    assert list(table.columns) == ["mrn", "probability"]
    assert table["mrn"].str.fullmatch(r"psn-[a-p]{24}").all()
    assert table["probability"].between(0, 1).all()
    left_out = int(out.split("(")[1].split(" rows")[0])
    assert len(table) + left_out == 200 and f"{len(table)} predictions" in out
    assert out_csv.stat().st_mode & 0o777 == 0o600
    exported = pd.read_csv(raw, dtype=str, keep_default_na=False)
    text = out_csv.read_text()
    for column in ("mrn", "patient_name", "ssn"):
        assert not any(value and value in text for value in exported[column])


def test_a_model_that_does_not_fit_the_task_is_refused(hospital, capsys, tmp_path):
    key, _, data, _ = hospital
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    spec = ModelSpec(5)
    np.savez(
        run_dir / "model.npz",
        **{f"w{i}": w for i, w in enumerate(initial_weights(spec, 0))},
    )
    model = {"input_dim": 5, "hidden": [], "activation": "relu"}
    (run_dir / "metrics.json").write_text(json.dumps({"run": {"model": model}}))
    code, _, err = run(
        capsys, "evaluate", str(data), "--model", str(run_dir), "--key", str(key)
    )
    assert code == 2 and "takes 5 inputs but task 'fed-heart-disease' builds 13" in err
    code, _, err = run(
        capsys, "evaluate", str(data), "--model", str(tmp_path), "--key", str(key)
    )
    assert code == 2 and "not a run's results directory" in err


def test_a_task_other_than_the_runs_is_refused(hospital, capsys, tmp_path):
    key, _, data, base = hospital
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.npz").write_bytes((base / "model.npz").read_bytes())
    document = json.loads((base / "metrics.json").read_text())
    document["run"]["task_fingerprint"] = "0" * 64  # trained on another task
    (run_dir / "metrics.json").write_text(json.dumps(document))
    for command in ("evaluate", "privacy-check"):
        code, _, err = run(
            capsys, command, str(data), "--model", str(run_dir), "--key", str(key)
        )
        assert code == 2 and "is not the task the run trained" in err, err
    document["run"]["task_fingerprint"] = FED_HEART_TASK.fingerprint()
    (run_dir / "metrics.json").write_text(json.dumps(document))
    code, out, err = run(
        capsys, "privacy-check", str(data), "--model", str(run_dir), "--key", str(key)
    )
    assert code == 0, err
    assert "attack ROC AUC" in out and "No membership leakage detected" in out


def test_check_loads_a_federation_scaled_task_without_its_statistics(
    hospital, capsys, tmp_path
):
    from hospfed.common.task import dump_task
    from tests.client.test_app import _federation_task

    key, _, data, _ = hospital
    task = tmp_path / "federation.task.toml"
    dump_task(_federation_task(), task)
    code, out, err = run(
        capsys, "check", str(data), "--key", str(key), "--task", str(task)
    )
    assert code == 0, err
    assert "train" in out and "13" in out


def _run_with_task(base, run_dir, task, fingerprint=None):
    run_dir.mkdir()
    (run_dir / "model.npz").write_bytes((base / "model.npz").read_bytes())
    document = json.loads((base / "metrics.json").read_text())
    document["run"]["task_document"] = task.to_document()
    document["run"]["task_fingerprint"] = fingerprint or task.fingerprint()
    (run_dir / "metrics.json").write_text(json.dumps(document))


def test_the_task_the_run_recorded_is_used_when_none_is_given(
    hospital, capsys, tmp_path
):
    from dataclasses import replace

    key, _, data, base = hospital
    held = replace(
        FED_HEART_TASK,
        split=replace(FED_HEART_TASK.split, validation_fraction=0.5),
    )
    members = {}
    for name, task in (("plain", FED_HEART_TASK), ("held", held)):
        _run_with_task(base, tmp_path / name, task)
        code, out, err = run(
            capsys, "privacy-check", str(data), "--model", str(tmp_path / name),
            "--key", str(key),
        )  # fmt: skip
        assert code == 0, err
        members[name] = int(out.split("members (training rows)")[1].split()[1])
    # the validation rows trained on nothing: half the training rows are members
    assert members["held"] == pytest.approx(members["plain"] / 2, abs=1)
    code, _, err = run(
        capsys, "evaluate", str(data), "--model", str(tmp_path / "held"),
        "--key", str(key), "--task", "fed-heart-disease",
    )  # fmt: skip
    assert code == 2 and "is not the task the run trained" in err


def test_a_recorded_task_that_is_not_the_runs_is_refused(hospital, capsys, tmp_path):
    key, _, data, base = hospital
    _run_with_task(base, tmp_path / "run", FED_HEART_TASK, fingerprint="1" * 64)
    code, _, err = run(
        capsys, "evaluate", str(data), "--model", str(tmp_path / "run"),
        "--key", str(key),
    )  # fmt: skip
    assert code == 2 and "results directory was altered" in err, err
