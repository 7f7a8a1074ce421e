"""A run keeps what it learned: checkpoint and results after every round."""

import json
from types import SimpleNamespace

import numpy as np
from flwr.common import Code, EvaluateRes, FitRes, Status, ndarrays_to_parameters

from hospfed.common.model import initial_weights
from hospfed.server.checkpoint import load_checkpoint, run_identity
from hospfed.server.config import RunConfig
from hospfed.server.factory import build_strategy
from hospfed.server.history import RunHistory
from hospfed.server.recorder import RunRecorder
from hospfed.server.strategy import RoundGuard

OK = Status(Code.OK, "")
SETTINGS = {"backend": "keras", "privacy": None}


def play_round(guard, flower_round, shift):
    weights = [w + shift for w in guard.weights]
    fit = FitRes(OK, ndarrays_to_parameters(weights), 10, {"hospital": "a"})
    node = SimpleNamespace(node_id=1)
    guard.aggregate_fit(flower_round, [(node, fit)], [])
    score = EvaluateRes(OK, 0.5, 10, {"hospital": "a", "accuracy": 0.7, "auc": 0.8})
    guard.aggregate_evaluate(flower_round, [(node, score)], [])


def start(tmp_path, strategy="fedyogi", resume=None, rounds=4):
    config = RunConfig.from_mapping(
        {"strategy": strategy, "num-rounds": rounds, "out-dir": str(tmp_path)}
    )
    weights = resume.weights if resume else initial_weights(config.model, 0)
    inner = build_strategy(config, weights)
    history = RunHistory(list(resume.history.rounds) if resume else [])
    recorder = RunRecorder(
        config,
        identity=run_identity(config, SETTINGS),
        settings=SETTINGS,
        history=history,
        strategy=inner,
        resume=resume,
    )
    guard = RoundGuard(
        inner,
        min_results=1,
        num_rounds=rounds,
        history=history,
        weights=weights,
        first_round=1 + (resume.completed_rounds if resume else 0),
        on_round_complete=recorder.round_completed,
    )
    return guard, recorder


def metrics(path):
    return json.loads((path / "metrics.json").read_text())


def test_every_round_is_checkpointed_and_an_interruption_is_marked(tmp_path):
    guard, recorder = start(tmp_path)
    play_round(guard, 1, 0.5)
    assert metrics(tmp_path)["status"] == "running"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.npz",
        "metrics.json",
        "model-card.md",
        "model.npz",
    ]
    play_round(guard, 2, -0.25)
    checkpoint = load_checkpoint(tmp_path)
    assert checkpoint.completed_rounds == 2 and checkpoint.status == "running"
    assert set(checkpoint.optimizer) == {"m_t", "v_t"}
    assert all(
        np.array_equal(a, b)
        for a, b in zip(checkpoint.weights, guard.weights, strict=True)
    )
    recorder.finish("interrupted", "interrupted (SIGINT) after round 2 of 4")
    written = metrics(tmp_path)
    assert written["status"] == "interrupted"
    assert written["reason"] == "interrupted (SIGINT) after round 2 of 4"
    assert [r["round"] for r in written["rounds"]] == [1, 2]
    assert written["run"]["config_hash"] == checkpoint.config_hash
    assert written["run"]["versions"]["flwr"].startswith("1.42")
    assert written["run"]["settings"] == SETTINGS
    assert (tmp_path / "curves.png").exists()
    assert load_checkpoint(tmp_path).status == "interrupted"


def test_a_resumed_run_continues_the_history_without_gaps(tmp_path):
    guard, recorder = start(tmp_path)
    play_round(guard, 1, 0.5)
    recorder.finish("interrupted", "stop")
    resume = load_checkpoint(tmp_path)
    guard, recorder = start(tmp_path, resume=resume)
    play_round(guard, 1, -0.25)  # Flower's round 1 is the run's round 2
    play_round(guard, 2, 0.125)
    recorder.finish("complete", None)
    written = metrics(tmp_path)
    assert [r["round"] for r in written["rounds"]] == [1, 2, 3]
    assert written["status"] == "complete" and written["reason"] is None
    assert written["run"]["resumed_from"] == [1]


def test_a_run_that_fails_before_any_round_records_only_why(tmp_path):
    _, recorder = start(tmp_path, strategy="fedavg")
    recorder.finish("failed", "round 1 (train) failed: received 0 results")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "metrics.json",
        "model-card.md",
    ]
    assert metrics(tmp_path)["completed_rounds"] == 0
    recorder.finish("interrupted", "SIGINT")  # nothing learned, nothing new


def test_an_interruption_before_any_round_writes_nothing(tmp_path):
    _, recorder = start(tmp_path / "out", strategy="fedavg")
    recorder.finish("interrupted", "SIGINT")
    assert not (tmp_path / "out").exists()
