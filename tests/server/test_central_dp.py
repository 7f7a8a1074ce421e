"""Client-level central DP: refusals, noise calibration, accounting, records."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.client_manager import SimpleClientManager
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM, KEY_NORM_BIT

from hospfed.common.errors import ConfigError, RoundFailedError
from hospfed.common.model import initial_weights
from hospfed.common.protocol import Key
from hospfed.common.rdp import DpMechanism, epsilon_spent
from hospfed.server.central_dp import (
    central_dp_strategy,
    central_epsilon,
    central_summary,
)
from hospfed.server.config import RunConfig
from hospfed.server.factory import build_strategy
from hospfed.server.history import RoundRecord, RunHistory
from tests.server.test_strategy import fit_res

FIXED = {"central-dp": "fixed", "secure-aggregation": "false"}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"central-noise-multiplier": 1.0}, "central-noise-multiplier has no effect"),
        ({**FIXED, "strategy": "fedyogi"}, "server optimiser"),
        ({**FIXED, "strategy": "fedadam"}, "fedavg or fedprox, not 'fedadam'"),
        ({**FIXED, "strategy": "fedmedian"}, "not the mean of the clipped"),
        ({**FIXED, "strategy": "krum"}, "fedavg or fedprox, not 'krum'"),
        ({**FIXED, "clip-norm-lr": 0.1}, "clip-norm-lr applies to central-dp = ada"),
        ({**FIXED, "central-delta": 1.5}, "central-delta"),
        ({**FIXED, "central-clipping-norm": 0}, "central-clipping-norm: must be > 0"),
        ({**FIXED, "central-noise-multiplier": 0}, "central-noise-multiplier"),
        ({"central-dp": "local"}, "central-dp: unknown value 'local'"),
        (
            {"central-dp": "adaptive", "clipped-count-stddev": 0.2},
            "clipped-count-stddev must be above half",
        ),
        (
            {"central-dp": "fixed", "secure-aggregation": "true", "max-weight": 10},
            "max-weight has no effect with central-dp",
        ),
    ],
)
def test_bad_central_dp_settings_are_refused_in_one_line(config, message):
    with pytest.raises(ConfigError, match=message) as info:
        RunConfig.from_mapping(config)
    assert "\n" not in str(info.value)


def test_central_dp_with_secure_aggregation_weighs_every_hospital_one():
    config = RunConfig.from_mapping(
        {"central-dp": "adaptive", "secure-aggregation": "true"}
    )
    assert config.secure_aggregation.max_weight == 1.0
    assert config.central_dp.clipped_count_stddev == config.central_dp.noise_multiplier


@pytest.mark.parametrize(
    ("noise", "q", "rounds", "delta"),
    [(1.0, 1.0, 15, 1e-3), (0.7, 0.5, 40, 1e-5), (2.5, 0.25, 200, 1e-3)],
)
def test_central_epsilon_equals_opacus_rdp_accountant(noise, q, rounds, delta):
    from opacus.accountants import RDPAccountant

    history = RunHistory(
        [
            RoundRecord(i + 1, central={"noise_multiplier": noise, "sample_rate": q})
            for i in range(rounds)
        ]
    )
    accountant = RDPAccountant()
    accountant.history = [(noise, q, rounds)]
    expected = accountant.get_epsilon(delta)
    assert central_epsilon(history, delta) == pytest.approx(expected, rel=1e-9)
    same = [DpMechanism(noise_multiplier=noise, sample_rate=q, steps=rounds)]
    assert epsilon_spent(same, delta) == pytest.approx(expected, rel=1e-9)


def wrapped(mapping, hospitals=4, history=None):
    config = RunConfig.from_mapping({"model-hidden": "64", **mapping})
    weights = initial_weights(config.model, 0)
    history = history or RunHistory()
    strategy = central_dp_strategy(
        build_strategy(config, weights),
        config.central_dp,
        history,
        min_results=1,
        secure=config.secure_aggregation is not None,
    )
    manager = SimpleClientManager()
    manager.num_available = lambda: 2 * hospitals
    manager.sample = lambda *a, **k: [SimpleNamespace(node_id=i) for i in range(4)]
    return strategy, weights, history, manager


def updates(weights, norm, count, rng):
    """``count`` results, each ``weights`` moved by a random update of ``norm``."""
    results = []
    for i in range(count):
        steps = [rng.standard_normal(w.shape) for w in weights]
        scale = norm / math.sqrt(sum(float(np.sum(s**2)) for s in steps))
        moved = [
            (w + scale * s).astype(np.float32)
            for w, s in zip(weights, steps, strict=True)
        ]
        res = fit_res(f"h{i}", 1, moved)
        res.metrics[KEY_NORM_BIT] = False
        results.append((SimpleNamespace(node_id=i), res))
    return results


def test_the_aggregate_is_the_plain_mean_plus_noise_of_std_z_c_over_n():
    z, c, n = 1.3, 0.4, 4
    strategy, weights, history, manager = wrapped(
        {**FIXED, "central-noise-multiplier": z, "central-clipping-norm": c}
    )
    rng = np.random.default_rng(0)
    params = ndarrays_to_parameters(weights)
    noise = []
    for server_round in range(1, 21):
        instructions = strategy.configure_fit(server_round, params, manager)
        assert instructions[0][1].config[KEY_CLIPPING_NORM] == c
        assert instructions[0][1].config[Key.CENTRAL_DP] == "fixed"
        results = updates(weights, 0.9 * c, n, rng)
        mean = [
            np.mean([parameters_to_ndarrays(r.parameters)[k] for _, r in results], 0)
            for k in range(len(weights))
        ]
        aggregate, _ = strategy.aggregate_fit(server_round, results, [])
        got = parameters_to_ndarrays(aggregate)
        noise += [np.ravel(g - m) for g, m in zip(got, mean, strict=True)]
    noise = np.concatenate(noise)
    expected = z * c / n
    # The sample std of N normals has relative standard error 1/sqrt(2N).
    assert abs(noise.std() / expected - 1) < 5 / math.sqrt(2 * noise.size)
    assert abs(noise.mean()) < 5 * expected / math.sqrt(noise.size)
    last = history.rounds[-1].central
    assert (last["sample_rate"], last["noise_std"]) == (0.5, pytest.approx(expected))
    accountant = [DpMechanism(noise_multiplier=z, sample_rate=0.5, steps=20)]
    assert last["epsilon"] == pytest.approx(epsilon_spent(accountant, 1e-3))


def test_noise_is_calibrated_to_the_hospitals_aggregated_not_those_sampled():
    strategy, weights, history, manager = wrapped(FIXED)
    strategy.configure_fit(1, ndarrays_to_parameters(weights), manager)
    results = updates(weights, 0.1, 2, np.random.default_rng(1))
    failure = Exception("declined")
    parameters, _ = strategy.aggregate_fit(1, results, [failure])
    assert parameters is not None  # Flower's wrapper alone drops the round
    assert history.rounds[0].central["noise_std"] == pytest.approx(1.0 * 0.5 / 2)


def test_an_unclipped_or_weighted_update_is_left_out_and_named():
    strategy, weights, history, manager = wrapped(FIXED)
    strategy.configure_fit(1, ndarrays_to_parameters(weights), manager)
    rng = np.random.default_rng(2)
    good = updates(weights, 0.1, 2, rng)
    [(_, wide)] = updates(weights, 5.0, 1, rng)
    [(_, heavy)] = updates(weights, 0.1, 1, rng)
    heavy.num_examples = 85
    results = [
        *good,
        (SimpleNamespace(node_id=7), wide),
        (SimpleNamespace(node_id=8), heavy),
    ]
    strategy.aggregate_fit(1, results, [])
    reasons = [d.reason for d in history.rounds[0].declined]
    assert any("beyond the clipping norm" in r for r in reasons)
    assert any("reported weight 85" in r for r in reasons)
    assert history.rounds[0].central["hospitals"] == 2
    strategy.min_results = 3
    with pytest.raises(RoundFailedError):
        strategy.aggregate_fit(2, results, [])


def test_adaptive_noise_never_uses_a_norm_below_the_one_hospitals_clipped_to():
    strategy, weights, history, manager = wrapped(
        {"central-dp": "adaptive", "secure-aggregation": "false"}
    )
    params = ndarrays_to_parameters(weights)
    rng = np.random.default_rng(3)
    for server_round in (1, 2, 3):
        strategy.configure_fit(server_round, params, manager)
        norm = strategy.clipping_norm
        results = updates(weights, 0.5 * norm, 4, rng)
        for _, res in results:
            res.metrics[KEY_NORM_BIT] = True  # every update clipped: norm grows
        strategy.aggregate_fit(server_round, results, [])
        record = history.rounds[-1].central
        assert record["clipping_norm"] == norm
        z_update = record["update_noise_multiplier"]
        assert record["noise_std"] >= z_update * norm / 4 - 1e-12
    # A resumed run continues from the adapted norm, and its epsilon.
    resumed, *_ = wrapped(
        {"central-dp": "adaptive", "secure-aggregation": "false"}, history=history
    )
    assert resumed.clipping_norm == history.rounds[-1].central["next_clipping_norm"]
    summary = central_summary(
        history, {"mechanism": "adaptive", **resumed.settings.to_json()}
    )
    assert summary["rounds"] == 3
    assert summary["epsilon"] == pytest.approx(central_epsilon(history, 1e-3))


def test_central_records_survive_json_and_old_records_are_unchanged():
    record = RoundRecord(2, central={"noise_multiplier": 1.0, "epsilon": 0.5})
    assert RoundRecord.from_json(record.to_json()).central == record.central
    assert "central_dp" not in RoundRecord(2).to_json()
    assert RoundRecord.from_json(RoundRecord(2).to_json()).central is None


def test_the_deployment_round_line_shows_the_central_epsilon():
    from hospfed.server.runs import round_line

    row = {"round": 2, "epsilon": {"max": 1.25}, "central_dp": {"epsilon": 3.5}}
    assert "epsilon max 1.250, central epsilon 3.500" in round_line(row, 3)
