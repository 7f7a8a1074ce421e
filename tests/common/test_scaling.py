"""Federation-wide standardisation: sums in, the pooled statistics out."""

from __future__ import annotations

import numpy as np
import pytest

from hospfed.common.errors import ConfigError
from hospfed.common.scaling import InputSums, Scaling, federation_scaling


def _sums(x: np.ndarray) -> InputSums:
    return InputSums(len(x), tuple(x.sum(0)), tuple((x**2).sum(0)))


def test_combined_sums_give_the_pooled_mean_and_std():
    rng = np.random.default_rng(0)
    parts = [
        rng.normal(m, s, (n, 3)) for m, s, n in ((5, 2, 40), (-1, 7, 300), (0, 1, 9))
    ]
    for p in parts:
        p[:, 2] = 4.0  # a constant input
    pooled = np.concatenate(parts)
    scaling = federation_scaling(_sums(p) for p in parts)
    np.testing.assert_allclose(scaling.mean, pooled.mean(0), rtol=1e-12)
    np.testing.assert_allclose(scaling.std[:2], pooled.std(0)[:2], rtol=1e-9)
    assert scaling.std[2] == 1.0  # a constant input stays 0 after scaling


def test_json_round_trips_and_refuses_what_is_not_finite():
    sums = _sums(np.arange(12.0).reshape(4, 3))
    assert InputSums.from_json(sums.to_json(), "h") == sums
    scaling = Scaling((1.0, 2.0), (3.0, 4.0))
    assert Scaling.from_json(scaling.to_json()) == scaling
    assert scaling.digest() != Scaling((1.0, 2.0), (3.0, 5.0)).digest()
    for text, where in (
        ('{"count": 3, "sums": [1], "squares": [1, 2]}', "inconsistent"),
        ('{"count": 3, "sums": [NaN], "squares": [1]}', "not finite"),
        ('{"count": 0, "sums": [1], "squares": [1]}', "inconsistent"),
        ("[]", "malformed"),
    ):
        with pytest.raises(ConfigError, match=f"north: .*{where}"):
            InputSums.from_json(text, "north")
    with pytest.raises(ConfigError, match="positive std"):
        Scaling.from_json('{"mean": [0], "std": [0]}')
    with pytest.raises(ConfigError, match="sums of \\[2, 3\\] inputs"):
        federation_scaling(
            [InputSums(1, (1, 2), (1, 2)), InputSums(1, (1, 2, 3), (1, 2, 3))]
        )
    with pytest.raises(ConfigError, match="no hospital"):
        federation_scaling([])
