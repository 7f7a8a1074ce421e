"""Bad updates are left out (logged with the node id) while the round goes on."""

import numpy as np
import pytest
from flwr.common import parameters_to_ndarrays

from hospfed.common.errors import RoundFailedError
from hospfed.common.model import initial_weights
from hospfed.server.config import RunConfig
from hospfed.server.factory import build_strategy
from hospfed.server.history import RunHistory
from hospfed.server.strategy import RoundGuard
from hospfed.server.validation import UpdateRules, update_norm, update_problem
from tests.server.test_strategy import fit_res, proxy

CONFIG = RunConfig.from_mapping({"max-update-norm": 1.0})
WEIGHTS = initial_weights(CONFIG.model, 0)
RULES = UpdateRules(shapes=CONFIG.model.weight_shapes(), max_update_norm=1.0)


def shifted(by):
    return [w + np.float32(by) for w in WEIGHTS]


def test_max_update_norm_is_a_run_config_key():
    assert CONFIG.max_update_norm == 1.0
    assert RunConfig.from_mapping({}).max_update_norm is None


@pytest.mark.parametrize(
    ("arrays", "problem"),
    [
        (WEIGHTS[:1], "1 arrays, the model has 2"),
        ([WEIGHTS[0].T, WEIGHTS[1]], "array shapes"),
        ([np.full_like(WEIGHTS[0], np.nan), WEIGHTS[1]], "13 values are not finite"),
        ([WEIGHTS[0], WEIGHTS[1] + np.inf], "1 values are not finite"),
        (shifted(1.0), "update norm 3.742 exceeds max-update-norm 1"),
    ],
)
def test_each_kind_of_bad_update_is_named(arrays, problem):
    assert problem in update_problem(arrays, RULES, WEIGHTS)


def test_a_good_update_passes_and_norms_are_of_the_difference():
    assert update_problem(shifted(0.1), RULES, WEIGHTS) is None
    assert update_norm(shifted(0.1), WEIGHTS) == pytest.approx(0.1 * np.sqrt(14), 1e-5)


def make_guard(min_results):
    history = RunHistory()
    guard = RoundGuard(
        build_strategy(CONFIG, WEIGHTS),
        min_results=min_results,
        num_rounds=3,
        history=history,
        rules=RULES,
    )
    guard._global = WEIGHTS
    return guard, history


def test_bad_updates_are_left_out_with_node_id_and_the_round_goes_on(caplog):
    guard, history = make_guard(2)
    nan = [np.full_like(WEIGHTS[0], np.nan), WEIGHTS[1]]
    results = [
        (proxy(11), fit_res("cleveland", 100, shifted(0.1))),
        (proxy(12), fit_res("hungary", 100, shifted(0.2))),
        (proxy(13), fit_res("va", 50, nan)),
        (proxy(14), fit_res("switzerland", 20, shifted(5.0))),
    ]
    params, _ = guard.aggregate_fit(1, results, [])
    merged = parameters_to_ndarrays(params)
    np.testing.assert_allclose(merged[0], WEIGHTS[0] + 0.15, atol=1e-6)
    record = history.rounds[0]
    assert set(record.train) == {"cleveland", "hungary"}
    reasons = {d.hospital: d.reason for d in record.declined}
    assert reasons["va"] == (
        "update of node 13 rejected: 13 values are not finite (NaN or infinite)"
    )
    assert reasons["switzerland"].startswith("update of node 14 rejected: update norm")
    assert {d["hospital"] for d in record.to_json()["declined"]} == {
        "va",
        "switzerland",
    }


def test_too_few_good_updates_fail_the_round_naming_the_rejections():
    guard, _ = make_guard(2)
    results = [
        (proxy(11), fit_res("cleveland", 100, shifted(0.1))),
        (proxy(14), fit_res("switzerland", 20, shifted(5.0))),
    ]
    with pytest.raises(RoundFailedError, match="switzerland: update of node 14"):
        guard.aggregate_fit(1, results, [])
