"""SecAgg+ as a run-config switch; halted rounds fail or are skipped, loudly."""

from types import SimpleNamespace

import numpy as np
import pytest
from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.workflow.secure_aggregation.secaggplus_workflow import (
    WorkflowState,
)

from hospfed.common.errors import ConfigError, RoundFailedError
from hospfed.common.model import initial_weights
from hospfed.server.checkpoint import config_hash, run_identity
from hospfed.server.config import RUN_CONFIG_KEYS, RunConfig
from hospfed.server.factory import build_strategy
from hospfed.server.history import RoundRecord, RunHistory
from hospfed.server.results import describe_run
from hospfed.server.secagg import GuardedSecAggPlusWorkflow, halt_reason
from hospfed.server.strategy import RoundGuard
from hospfed.server.validation import UpdateRules
from tests.server.test_strategy import fit_res, proxy

ON = {"secure-aggregation": True, "min-hospitals": 4}


def test_secure_aggregation_is_off_unless_asked_and_its_keys_are_run_config_keys():
    assert RunConfig.from_mapping({}).secure_aggregation is None
    for key in (
        "secure-aggregation",
        "num-shares",
        "reconstruction-threshold",
        "clipping-range",
        "quantization-range",
        "timeout",
        "max-update-norm",
    ):
        assert key in RUN_CONFIG_KEYS
    secagg = RunConfig.from_mapping(
        ON | {"num-shares": 5, "reconstruction-threshold": 3, "timeout": 0}
    ).secure_aggregation
    assert secagg is not None
    assert (secagg.num_shares, secagg.reconstruction_threshold) == (5, 3)
    assert secagg.timeout is None  # 0: wait as long as it takes


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"min-hospitals": 1}, "at least 2 hospitals per round"),
        ({"num-shares": 2}, "num-shares: must be >= 3"),
        (
            {"num-shares": 4, "reconstruction-threshold": 4},
            "must be >= 2 and < num-shares",
        ),
        ({"reconstruction-threshold": 1}, "reconstruction-threshold: must be >= 2"),
        ({"clipping-range": 0}, "clipping-range: must be > 0"),
        ({"clipping-range": "inf"}, "clipping-range must be a finite number"),
        ({"quantization-range": 2**31}, "so the masked sums cannot wrap"),
        ({"secure-aggregation": "maybe"}, "expected true or false"),
    ],
)
def test_bad_secure_aggregation_settings_are_refused_clearly(extra, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_mapping(ON | extra)


def test_secagg_keys_without_secure_aggregation_are_refused():
    with pytest.raises(ConfigError, match="num-shares has no effect with secure"):
        RunConfig.from_mapping({"num-shares": 5})


def test_runs_without_the_new_settings_keep_their_config_hash():
    plain = RunConfig.from_mapping({})
    assert describe_run(plain)["secure_aggregation"] is None  # metrics.json says so
    assert "secure_aggregation" not in run_identity(plain, {})
    assert "max_update_norm" not in run_identity(plain, {})
    secure = RunConfig.from_mapping(ON | {"min-hospitals": 2})
    assert describe_run(secure)["secure_aggregation"]["num_shares"] == 4
    assert config_hash(run_identity(secure, {})) != config_hash(run_identity(plain, {}))


def make_guard(min_results, *, rules=None):
    config = RunConfig.from_mapping({"min-hospitals": max(min_results, 2)})
    weights = initial_weights(config.model, 0)
    history = RunHistory()
    guard = RoundGuard(
        build_strategy(config, weights),
        min_results=min_results,
        num_rounds=5,
        history=history,
        weights=weights,
        first_round=3,
        rules=rules,
    )
    guard.current_round = 3
    guard._fit_finished = False
    return guard, history, weights


def test_a_halt_below_the_minimum_fails_the_round_naming_round_stage_and_why():
    guard, _history, _ = make_guard(4)
    reason = "below the reconstruction threshold: 2 of 4 hospitals still answering"
    with pytest.raises(RoundFailedError) as info:
        guard.secagg_halted(
            stage="share keys",
            reason=reason,
            answering=2,
            failures=[Exception("va: ClientApp crashed")],
        )
    message = str(info.value)
    assert "round 3 (train) failed" in message
    assert "secure aggregation halted at share keys" in message
    assert "received 2 results, needed at least 4" in message
    assert reason in message and "va: ClientApp crashed" in message
    assert info.value.exit_code == 3


def test_a_halt_within_the_minimum_skips_the_round_and_says_so():
    guard, history, weights = make_guard(2)
    guard.secagg_halted(
        stage="unmask", reason="too few key shares", answering=2, failures=[]
    )
    record = history.round(3)
    assert record.skipped == "secure aggregation halted at unmask: too few key shares"
    assert record.to_json()["skipped"] == record.skipped
    assert RoundRecord.from_json(record.to_json()).skipped == record.skipped
    guard.configure_evaluate(1, ndarrays_to_parameters(weights), _manager(2))
    assert "skipped" not in RoundRecord(server_round=1).to_json()


def test_a_fit_that_ends_without_aggregating_or_saying_why_fails_the_round():
    guard, _, weights = make_guard(2)
    with pytest.raises(RoundFailedError, match="training ended without any aggreg"):
        guard.configure_evaluate(1, ndarrays_to_parameters(weights), _manager(2))


def _manager(n):
    from flwr.server.client_manager import SimpleClientManager

    manager = SimpleClientManager()
    manager.sample = lambda num_clients, **kw: [proxy(i) for i in range(n)]
    manager.num_available = lambda: n
    return manager


def test_halt_reasons_say_too_few_shares_or_below_threshold():
    state = WorkflowState(
        sampled_node_ids={1, 2, 3, 4}, active_node_ids={1, 2}, num_shares=4, threshold=3
    )
    assert "too few key shares" in halt_reason("unmask", state)
    assert "below the reconstruction threshold: 2 of 4" in halt_reason(
        "collect masked vectors", state
    )
    assert "at least 2 sampled" in halt_reason("setup", WorkflowState())


def test_the_workflow_reports_a_halt_to_the_guard_instead_of_returning_silently():
    from flwr.server import LegacyContext

    config = RunConfig.from_mapping(ON)
    assert config.secure_aggregation is not None
    guard, _history, _ = make_guard(4)
    workflow = GuardedSecAggPlusWorkflow(config.secure_aggregation)
    stages = []
    workflow.on_stage = lambda rnd, stage: stages.append((rnd, stage))
    workflow.setup_stage = lambda grid, ctx, state: False  # type: ignore[method-assign]
    context = LegacyContext.__new__(LegacyContext)
    context.strategy = guard
    with pytest.raises(RoundFailedError, match="secure aggregation halted at setup"):
        workflow(SimpleNamespace(), context)
    assert stages == [(3, "setup")]


def test_the_secure_aggregate_is_checked_and_cast_to_float32():
    config = RunConfig.from_mapping(ON)
    rules = UpdateRules(
        shapes=config.model.weight_shapes(), max_update_norm=5.0, max_weight=1000.0
    )
    guard, _history, weights = make_guard(2, rules=rules)
    guard._global = weights
    aggregate = [np.asarray(w, np.float64) + 0.01 for w in weights]
    results = [
        (proxy(1), fit_res("a", 100, aggregate)),
        (proxy(2), fit_res("b", 50, aggregate)),
    ]
    params, _ = guard.aggregate_fit(1, results, [])
    merged = parameters_to_ndarrays(params)
    assert all(m.dtype == np.float32 for m in merged)
    np.testing.assert_allclose(merged[0], aggregate[0], atol=1e-6)

    too_far = [w + 10.0 for w in aggregate]
    guard, *_ = make_guard(2, rules=rules)
    guard._global = weights
    with pytest.raises(
        RoundFailedError, match="secure aggregate is rejected: update norm"
    ):
        guard.aggregate_fit(1, [(proxy(1), fit_res("a", 100, too_far))] * 2, [])
    guard, *_ = make_guard(2, rules=rules)
    with pytest.raises(RoundFailedError, match="a \\(node 1\\) reported 5000 examples"):
        guard.aggregate_fit(1, [(proxy(1), fit_res("a", 5000, aggregate))] * 2, [])


def test_an_even_share_count_reaches_flower_odd_so_more_hospitals_still_work():
    from hospfed.server.secagg import (
        GuardedSecAggPlusWorkflow,
        SecAggSettings,
        protocol_shares,
    )

    assert [protocol_shares(n) for n in (3, 4, 5, 6)] == [3, 5, 5, 7]
    workflow = GuardedSecAggPlusWorkflow(SecAggSettings(num_shares=4))
    assert workflow.num_shares == 5  # announced to hospitals as 5, not 4
