"""What rounds score, and personalisation: config, instructions, records."""

import json
import math
from dataclasses import replace
from types import SimpleNamespace

import pytest
from flwr.common import Code, EvaluateRes, Status

from hospfed.common.datasets import FED_HEART_TASK
from hospfed.common.errors import ConfigError
from hospfed.common.model import initial_weights
from hospfed.common.personal import (
    PersonalPlan,
    decode_evaluation,
    evaluation_instructions,
    split_of_round,
)
from hospfed.common.protocol import METRIC_WHITELIST
from hospfed.server.config import RunConfig
from hospfed.server.factory import build_strategy
from hospfed.server.history import RoundRecord, RunHistory
from hospfed.server.strategy import RoundGuard

HELD = replace(
    FED_HEART_TASK, split=replace(FED_HEART_TASK.split, validation_fraction=0.2)
)


def test_defaults_score_the_test_set_without_personalisation():
    config = RunConfig.from_mapping({})
    assert config.evaluate_on == "test" and config.personal is None


def test_personal_settings_default_to_the_runs_training():
    config = RunConfig.from_mapping(
        {"personalise": "ditto", "learning-rate": 0.02, "local-steps": 30}
    )
    assert config.personal == PersonalPlan(
        method="ditto", learning_rate=0.02, local_steps=30, ditto_lambda=0.1
    )


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"evaluate-on": "validation"}, "holds none out"),
        ({"evaluate-on": "train"}, "unknown value 'train'"),
        ({"personalise": "fedper"}, "unknown value 'fedper'"),
        ({"personal-steps": 5}, "no effect without personalise"),
        ({"personalise": "finetune", "ditto-lambda": 1.0}, "applies to personalise"),
        ({"personalise": "ditto", "ditto-lambda": -1.0}, "ditto-lambda"),
        (
            {"personalise": "ditto", "personal-learning-rate": 0},
            "personal-learning-rate",
        ),
    ],
)
def test_bad_evaluation_keys_are_refused_naming_them(keys, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_mapping(keys)


def test_validation_needs_and_accepts_a_task_that_holds_it_out():
    config = RunConfig.from_mapping({"evaluate-on": "validation"}, task=HELD)
    assert config.evaluate_on == "validation"


@pytest.mark.parametrize(
    ("evaluate_on", "expected"),
    [
        ("test", ["test", "test", "test"]),
        ("validation", ["validation"] * 3),
        ("validation-then-test", ["validation", "validation", "test"]),
    ],
)
def test_each_round_scores_the_set_the_run_asks_for(evaluate_on, expected):
    assert [split_of_round(evaluate_on, r, 3) for r in (1, 2, 3)] == expected


def evaluate_config(config, server_round):
    strategy = build_strategy(config, initial_weights(config.model, 0))
    return strategy.on_evaluate_config_fn(server_round)


def test_only_the_final_round_asks_hospitals_to_personalise():
    config = RunConfig.from_mapping(
        {
            "num-rounds": 3,
            "personalise": "finetune",
            "evaluate-on": "validation-then-test",
        },
        task=HELD,
    )
    first, last = evaluate_config(config, 1), evaluate_config(config, 3)
    assert decode_evaluation(first) == ("validation", None)
    split, personal = decode_evaluation(last)
    assert split == "test" and personal == config.personal
    fit = build_strategy(config, initial_weights(config.model, 0)).on_fit_config_fn(3)
    assert "personalise" not in fit and "evaluate-split" not in fit


def test_instructions_round_trip_and_malformed_ones_are_refused():
    plan = PersonalPlan(
        method="ditto", learning_rate=0.1, local_steps=7, ditto_lambda=2
    )
    config = evaluation_instructions("validation", plan)
    assert decode_evaluation(config) == ("validation", plan)
    assert decode_evaluation({}) == ("test", None)  # an older coordinator
    with pytest.raises(ConfigError, match="unknown set"):
        decode_evaluation({"evaluate-split": "train"})
    with pytest.raises(ConfigError, match="bad personalisation"):
        decode_evaluation({"personalise": "ditto", "personal-learning-rate": 0.1})


def test_personalised_metrics_may_leave_a_hospital_and_nothing_else_new():
    for name in ("personal-accuracy", "personal-auc", "personal-loss", "personal-rmse"):
        assert name in METRIC_WHITELIST
    assert "personal-weights" not in METRIC_WHITELIST


def result(hospital, accuracy, personal=None, epsilon=None):
    metrics = {"hospital": hospital, "accuracy": accuracy, "auc": 0.7}
    if personal is not None:
        metrics |= {
            "personal-accuracy": personal,
            "personal-auc": 0.9,
            "personal-loss": 0.3,
        }
    if epsilon is not None:
        metrics["epsilon-spent"] = epsilon
    return EvaluateRes(Status(Code.OK, ""), 0.6, 10, metrics)


def test_the_guard_records_global_and_personalised_scores_side_by_side():
    config = RunConfig.from_mapping(
        {"personalise": "finetune", "evaluate-on": "validation-then-test"}, task=HELD
    )
    history = RunHistory()
    guard = RoundGuard(
        build_strategy(config, initial_weights(config.model, 0)),
        min_results=2,
        num_rounds=2,
        history=history,
        evaluate_on=config.evaluate_on,
    )
    proxies = [SimpleNamespace(node_id=i) for i in (1, 2)]
    guard.aggregate_evaluate(
        1, [(proxies[0], result("a", 0.5)), (proxies[1], result("b", 0.7))], []
    )
    guard.aggregate_evaluate(
        2,
        [(proxies[0], result("a", 0.6, 0.8, 0.9)), (proxies[1], result("b", 0.7, 0.6))],
        [],
    )
    first, last = history.rounds
    assert first.split == "validation" and not first.personalised
    assert last.split == "test"
    assert last.mean()["accuracy"] == pytest.approx(0.65)
    assert last.mean(personalised=True)["accuracy"] == pytest.approx(0.7)
    assert last.personalised["a"]["loss"] == pytest.approx(0.3)
    assert last.epsilons() == {"a": 0.9}  # its personal DP-SGD's spending
    written = json.loads(json.dumps(last.to_json()))
    assert written["personalised"]["mean"]["accuracy"] == pytest.approx(0.7)
    assert "split" not in written  # test: as every record before
    assert first.to_json()["split"] == "validation"
    back = RoundRecord.from_json(written)
    assert back.personalised == last.personalised and back.split == "test"
    assert RoundRecord.from_json(first.to_json()).split == "validation"
    assert math.isnan(first.mean(personalised=True)["accuracy"])
