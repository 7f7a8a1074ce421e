import math
from types import SimpleNamespace

import numpy as np
import pytest
from flwr.app import Error
from flwr.common import (
    Code,
    EvaluateRes,
    FitRes,
    Status,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server.strategy import FedAdagrad, FedAdam, FedAvg, FedProx, FedYogi

from hospfed.common.errors import RoundFailedError
from hospfed.common.model import initial_weights
from hospfed.server.config import RunConfig
from hospfed.server.factory import build_strategy
from hospfed.server.history import RunHistory
from hospfed.server.strategy import RoundGuard

OK = Status(Code.OK, "")


def proxy(node_id):
    return SimpleNamespace(node_id=node_id)


def fit_res(hospital, n, weights):
    return FitRes(
        OK,
        ndarrays_to_parameters(weights),
        n,
        {"hospital": hospital, "train-loss": 0.5},
    )


def eval_res(hospital, n, accuracy, auc=0.8):
    return EvaluateRes(
        OK, 0.6, n, {"hospital": hospital, "accuracy": accuracy, "auc": auc}
    )


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("fedavg", FedAvg),
        ("fedprox", FedProx),
        ("fedadam", FedAdam),
        ("fedyogi", FedYogi),
        ("fedadagrad", FedAdagrad),
    ],
)
def test_factory_builds_each_strategy(name, cls):
    config = RunConfig.from_mapping({"strategy": name, "min-hospitals": 3})
    strategy = build_strategy(config, initial_weights(config.model, 0))
    assert type(strategy) is cls
    assert strategy.min_fit_clients == 3
    instructions = strategy.on_fit_config_fn(4)
    assert instructions["server-round"] == 4
    assert instructions["learning-rate"] == config.train.learning_rate


def test_adaptive_server_optimizer_settings_reach_flower():
    config = RunConfig.from_mapping({"strategy": "fedyogi"})
    strategy = build_strategy(config, initial_weights(config.model, 0))
    assert (strategy.eta, strategy.beta_1, strategy.beta_2, strategy.tau) == (
        0.01,
        0.9,
        0.999,
        1e-8,
    )


def make_guard(min_results=2):
    config = RunConfig.from_mapping({})
    inner = build_strategy(config, initial_weights(config.model, 0))
    history = RunHistory()
    seen = []
    observer = SimpleNamespace(on_round_end=lambda record, n: seen.append((record, n)))
    guard = RoundGuard(
        inner, min_results=min_results, num_rounds=5, history=history, observer=observer
    )
    return guard, history, seen, config


def test_round_with_too_few_results_fails_naming_round_and_failures():
    guard, *_ = make_guard(min_results=2)
    weights = initial_weights(RunConfig.from_mapping({}).model, 0)
    failures = [Exception("ClientApp raised: data file missing at hospital")]
    with pytest.raises(RoundFailedError) as info:
        guard.aggregate_fit(
            7, [(proxy(1), fit_res("cleveland", 10, weights))], failures
        )
    message = str(info.value)
    assert "round 7 (train) failed" in message
    assert "received 1 results, needed at least 2" in message
    assert "data file missing at hospital" in message
    assert info.value.exit_code != 0


def test_zero_results_fails_evaluation_too():
    guard, *_ = make_guard(min_results=1)
    with pytest.raises(RoundFailedError, match="round 2 \\(evaluate\\).*received 0"):
        guard.aggregate_evaluate(2, [], [Exception("boom"), Exception("bang")])


def test_guard_aggregates_and_records_every_hospital():
    guard, history, seen, config = make_guard()
    w = initial_weights(config.model, 0)
    w2 = [x + 1 for x in w]
    params, _ = guard.aggregate_fit(
        1, [(proxy(1), fit_res("a", 10, w)), (proxy(2), fit_res("b", 30, w2))], []
    )
    from flwr.common import parameters_to_ndarrays

    merged = parameters_to_ndarrays(params)
    np.testing.assert_allclose(merged[0], w[0] + 0.75, rtol=1e-6)
    loss, metrics = guard.aggregate_evaluate(
        1,
        [
            (proxy(1), eval_res("a", 10, 0.5)),
            (proxy(2), eval_res("b", 30, 0.9, math.nan)),
        ],
        [],
    )
    record = history.rounds[0]
    assert set(record.train) == set(record.evaluate) == {"a", "b"}
    assert record.mean()["accuracy"] == pytest.approx(0.7)
    assert record.weighted()["accuracy"] == pytest.approx(0.8)
    assert record.weighted()["auc"] == pytest.approx(0.8)  # NaN left out
    assert metrics["weighted-accuracy"] == pytest.approx(0.8)
    assert loss == pytest.approx(0.6)
    assert seen == [(record, 5)]
    assert record.to_json()["evaluate"]["b"]["auc"] is None


def test_failures_are_described_by_the_clients_own_message_without_traceback():
    from flwr.app import Error

    from hospfed.server.replies import describe_failures

    reason = (
        "<class 'ray.exceptions.RayTaskError'>:<'Traceback (most recent call last):\n"
        '  File "x.py", line 1\nException ClientAppException occurred. '
        "Message: unknown hospital 'nowhere'; the embedded federation has va\n'>"
    )
    failure = Exception(Error(code=2, reason=reason))
    assert describe_failures([failure]) == [
        "unknown hospital 'nowhere'; the embedded federation has va"
    ]
    bad_status = FitRes(
        Status(Code.FIT_NOT_IMPLEMENTED, "budget exhausted"), None, 0, {}
    )
    assert describe_failures([(proxy(4), bad_status)]) == ["node 4: budget exhausted"]


def test_a_round_that_cannot_sample_enough_hospitals_fails_instead_of_skipping():
    from flwr.server.client_manager import SimpleClientManager

    guard, *_ = make_guard(min_results=2)
    manager = SimpleClientManager()
    manager.sample = lambda *args, **kwargs: []  # Flower's give-up after waiting
    params = guard.initialize_parameters(manager)
    with pytest.raises(RoundFailedError, match="round 3 \\(train\\).*only 0 hospitals"):
        guard.configure_fit(3, params, manager)
    with pytest.raises(RoundFailedError, match="round 3 \\(evaluate\\)"):
        guard.configure_evaluate(3, params, manager)


def test_a_declining_hospital_is_left_out_and_named_while_the_round_goes_on():
    guard, history, _, config = make_guard(min_results=1)
    w = initial_weights(config.model, 0)
    res = fit_res("a", 10, w)
    res.metrics["epsilon-spent"] = 0.42
    reason = "privacy budget: round 3 would raise epsilon from 0.99 to 1.05"
    guard.aggregate_fit(3, [(proxy(1), res)], [Exception(Error(code=2, reason=reason))])
    record = history.rounds[0]
    assert [d.reason for d in record.declined] == [reason]
    assert record.epsilons() == {"a": 0.42}
    assert record.to_json()["epsilon"] == {"max": 0.42, "a": 0.42}


def test_a_resumed_guard_numbers_rounds_from_where_the_run_stopped():
    guard, history, _seen, config = make_guard(min_results=1)
    guard = RoundGuard(
        guard.strategy, min_results=1, num_rounds=5, history=history, first_round=4
    )
    from flwr.server.client_manager import SimpleClientManager

    manager = SimpleClientManager()
    manager.sample = lambda *args, **kwargs: [proxy(1)]
    params = ndarrays_to_parameters(initial_weights(config.model, 0))
    [(_, ins)] = guard.configure_fit(1, params, manager)  # Flower's round 1
    assert ins.config["server-round"] == 4
    w = initial_weights(config.model, 0)
    guard.aggregate_fit(1, [(proxy(1), fit_res("a", 10, w))], [])
    assert [r.server_round for r in history.rounds] == [4]


def test_a_stop_request_ends_the_run_before_the_next_round():
    from hospfed.server.stop import RunInterruptedError, StopRequest

    stop = StopRequest()
    config = RunConfig.from_mapping({})
    inner = build_strategy(config, initial_weights(config.model, 0))
    done = []
    guard = RoundGuard(
        inner,
        min_results=2,
        num_rounds=5,
        history=RunHistory(),
        stop=stop,
        first_round=3,
        weights=initial_weights(config.model, 0),
        on_round_complete=lambda r, w: done.append(r),
    )
    w = initial_weights(config.model, 0)
    guard.aggregate_fit(
        1, [(proxy(1), fit_res("a", 10, w)), (proxy(2), fit_res("b", 10, w))], []
    )
    guard.aggregate_evaluate(
        1, [(proxy(1), eval_res("a", 10, 0.5)), (proxy(2), eval_res("b", 10, 0.5))], []
    )
    assert done == [3] and guard.completed_rounds == 3
    assert stop.request("SIGTERM", 143) and not stop.request("SIGINT", 130)
    with pytest.raises(RunInterruptedError) as info:
        guard.configure_fit(2, None, None)
    assert (info.value.completed_rounds, info.value.exit_code) == (3, 143)
    assert str(info.value) == "interrupted (SIGTERM) after round 3 of 5"
    # After the stop, a round that loses hospitals (their workers got the
    # signal too) is interrupted, not failed.
    with pytest.raises(RunInterruptedError):
        guard.aggregate_fit(4, [], [Exception("worker died")])


def test_results_are_aggregated_in_hospital_order_whatever_their_arrival():
    config = RunConfig.from_mapping({})
    w = initial_weights(config.model, 0)
    results = [
        (proxy(i), fit_res(name, n, [x * (i + 0.1) for x in w]))
        for i, (name, n) in enumerate(
            [("va", 85), ("cleveland", 199), ("hungary", 172)]
        )
    ]
    merged = []
    for order in (results, results[::-1], results[1:] + results[:1]):
        guard, *_ = make_guard(min_results=1)
        params, _ = guard.aggregate_fit(1, list(order), [])
        merged.append(parameters_to_ndarrays(params))
    for other in merged[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(merged[0], other, strict=True))


def test_a_hospital_that_declines_is_named_once_its_node_is_known():
    from hospfed.server.replies import ReplyLog

    error = Error(code=2, reason="privacy budget: spent before run 7")
    reply = SimpleNamespace(
        has_error=lambda: True,
        error=error,
        metadata=SimpleNamespace(src_node_id=9, reply_to_message_id="m1"),
    )
    inner_grid = SimpleNamespace(
        push_messages=lambda messages: ["m1"], pull_messages=lambda ids: [reply]
    )
    replies = ReplyLog(inner_grid)
    assert list(replies.send_and_receive([])) == [reply]
    config = RunConfig.from_mapping({})
    history = RunHistory()
    guard = RoundGuard(
        build_strategy(config, initial_weights(config.model, 0)),
        min_results=1,
        num_rounds=3,
        history=history,
        replies=replies,
    )
    w = initial_weights(config.model, 0)
    guard.aggregate_fit(1, [(proxy(1), fit_res("a", 10, w))], [Exception(error)])
    record = history.rounds[0]
    assert record.declined[0].to_json() == {
        "hospital": "node 9",
        "reason": "privacy budget: spent before run 7",
    }
    guard.aggregate_evaluate(
        1, [(proxy(1), eval_res("a", 10, 0.5)), (proxy(9), eval_res("va", 5, 0.4))], []
    )
    assert record.declined[0].label() == "va: privacy budget: spent before run 7"
    record.declined[0].reason = "va: privacy budget: spent"  # the client named it
    assert record.declined[0].label() == "va: privacy budget: spent"


def test_a_reported_noise_multiplier_is_recorded():
    guard, history, _, config = make_guard(min_results=1)
    res = fit_res("a", 10, initial_weights(config.model, 0))
    res.metrics |= {"epsilon-spent": 0.5, "noise-multiplier": 2.39}
    guard.aggregate_fit(1, [(proxy(1), res)], [])
    assert history.rounds[0].train["a"]["noise_multiplier"] == 2.39


def test_hospitals_sampled_per_round_follow_the_run_seed():
    from flwr.server.client_manager import SimpleClientManager

    config = RunConfig.from_mapping(
        {"fraction-fit": "0.3", "fraction-evaluate": "0.3", "min-hospitals": "2"}
    )

    def sampled(seed, server_round, phase="fit"):
        manager = SimpleClientManager()
        for node in range(20):
            manager.register(SimpleNamespace(cid=str(node), node_id=node))
        guard = RoundGuard(
            build_strategy(config, initial_weights(config.model, 0)),
            min_results=2,
            num_rounds=5,
            history=RunHistory(),
            seed=seed,
        )
        params = ndarrays_to_parameters(initial_weights(config.model, 0))
        configure = guard.configure_fit if phase == "fit" else guard.configure_evaluate
        if phase != "fit":
            guard._fit_finished = True  # as after a round that aggregated
        return sorted(p.node_id for p, _ in configure(server_round, params, manager))

    first = sampled(0, 2)
    assert len(first) == 6  # 30% of 20
    assert sampled(0, 2) == first  # a rerun (or a resumed run) samples the same
    assert sampled(0, 3) != first or sampled(1, 2) != first
    assert sampled(0, 2, "evaluate") == sampled(0, 2, "evaluate")
