"""Byzantine-robust aggregation: median, trimmed mean and Krum, never with SecAgg+."""

import numpy as np
import pytest
from flwr.common import parameters_to_ndarrays
from flwr.server.strategy import FedMedian, FedTrimmedAvg, Krum

from hospfed.common.errors import ConfigError
from hospfed.common.model import initial_weights
from hospfed.server.config import RunConfig
from hospfed.server.factory import build_strategy
from tests.server.test_strategy import fit_res, proxy

OFF = {"secure-aggregation": "false"}


@pytest.mark.parametrize(
    ("name", "cls"),
    [("fedmedian", FedMedian), ("fedtrimmedavg", FedTrimmedAvg), ("krum", Krum)],
)
def test_a_robust_strategy_resists_one_wild_hospital(name, cls):
    config = RunConfig.from_mapping({"strategy": name, **OFF})
    strategy = build_strategy(config, initial_weights(config.model, 0))
    assert type(strategy) is cls
    honest = initial_weights(config.model, 1)
    rng = np.random.default_rng(0)
    results = [
        (
            proxy(i),
            fit_res(
                f"h{i}", 50, [w + 0.01 * rng.standard_normal(w.shape) for w in honest]
            ),
        )
        for i in range(4)
    ]
    wild = [w + 1000.0 for w in honest]
    results.append((proxy(9), fit_res("wild", 50, wild)))
    parameters, _ = strategy.aggregate_fit(1, results, [])
    aggregated = parameters_to_ndarrays(parameters)
    assert all(
        np.max(np.abs(a - h)) < 0.1 for a, h in zip(aggregated, honest, strict=True)
    )


def test_the_wild_hospital_does_move_a_plain_mean():  # the test above has power
    config = RunConfig.from_mapping({"strategy": "fedavg"})
    strategy = build_strategy(config, initial_weights(config.model, 0))
    honest = initial_weights(config.model, 1)
    results = [(proxy(i), fit_res(f"h{i}", 50, honest)) for i in range(4)]
    results.append((proxy(9), fit_res("wild", 50, [w + 1000.0 for w in honest])))
    parameters, _ = strategy.aggregate_fit(1, results, [])
    assert np.min(parameters_to_ndarrays(parameters)[0] - honest[0]) > 100


def test_robust_strategies_are_refused_with_secure_aggregation():
    with pytest.raises(ConfigError, match="needs each hospital's update"):
        RunConfig.from_mapping(
            {"strategy": "krum", "secure-aggregation": "true", "min-hospitals": 4}
        )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"strategy": "fedavg", "trim-fraction": "0.1"}, "applies to robust"),
        ({"strategy": "fedtrimmedavg", "trim-fraction": "0.5", **OFF}, r"\[0, 0.5\)"),
        (
            {"strategy": "fedmedian", "byzantine-hospitals": "1", **OFF},
            "applies to krum",
        ),
        ({"strategy": "krum", "trim-fraction": "0.1", **OFF}, "does not apply"),
    ],
)
def test_robust_settings_are_checked(config, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_mapping(config)


def test_robust_settings_reach_flower():
    trimmed = RunConfig.from_mapping(
        {"strategy": "fedtrimmedavg", "trim-fraction": "0.25", **OFF}
    )
    assert build_strategy(trimmed, initial_weights(trimmed.model, 0)).beta == 0.25
    krum = RunConfig.from_mapping(
        {"strategy": "krum", "byzantine-hospitals": "1", **OFF}
    )
    strategy = build_strategy(krum, initial_weights(krum.model, 0))
    assert strategy.num_malicious_clients == 1
