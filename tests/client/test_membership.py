"""The hospital's membership-inference audit finds leakage where there is some.

A deliberately over-fitted model (a 2x256 MLP memorising 60 noisy rows)
must be flagged; the same network trained with our DP-SGD at epsilon 1 on
enough rows for the test to have power (1,500 members, 1,500 non-members:
it detects an AUC of about 0.53 with 80% power) must not.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from hospfed.client.backends import get_backend
from hospfed.client.membership import membership_audit, per_example_loss, write_audit
from hospfed.client.predict import forward
from hospfed.client.privacy import DpStep, noise_multiplier_for, poisson_sample_rate
from hospfed.common.model import ModelSpec, initial_weights
from hospfed.common.training import HospitalData, TrainPlan

SPEC = ModelSpec(10, hidden=(256, 256))


def _data(n: int, *, flip: float, seed: int) -> HospitalData:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2 * n, 10)).astype(np.float32)
    y = (x @ rng.normal(size=10) > 0).astype(np.float32)
    flipped = rng.random(2 * n) < flip
    y[flipped] = 1 - y[flipped]
    return HospitalData("h", x[:n], y[:n], x[n:], y[n:])


def _train(data: HospitalData, plan: TrainPlan, step: DpStep | None = None):
    backend = get_backend("keras", SPEC)
    backend.set_weights(initial_weights(SPEC, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a fixed noise seed warns: tests only
        backend.train(data.x_train, data.y_train, plan, step)
    return backend.get_weights()


def test_an_over_fitted_model_is_flagged(tmp_path):
    data = _data(60, flip=0.3, seed=1)
    weights = _train(data, TrainPlan(learning_rate=0.1, local_steps=3000, batch_size=4))
    audit = membership_audit(SPEC, weights, data, bootstrap=300)
    assert audit.auc_ci[0] > 0.5 and audit.auc > 0.7
    assert audit.advantage_ci[0] > 0.0
    assert audit.verdict.startswith("LEAKAGE")
    out = tmp_path / "audit.json"
    write_audit(audit, out)
    assert (out.stat().st_mode & 0o777) == 0o600
    assert "members" in out.read_text()


def test_a_model_trained_with_dp_at_epsilon_1_shows_nothing_above_chance():
    data = _data(1500, flip=0.3, seed=2)
    rate, steps = poisson_sample_rate(1500, 32), 500
    noise = noise_multiplier_for(epsilon=1.0, delta=1e-3, sample_rate=rate, steps=steps)
    step = DpStep(noise_multiplier=noise, clip_norm=1.0, sample_rate=rate, noise_seed=7)
    weights = _train(
        data, TrainPlan(learning_rate=0.1, local_steps=steps, batch_size=32), step
    )
    audit = membership_audit(SPEC, weights, data, bootstrap=300)
    assert audit.auc_ci[0] <= 0.5 <= audit.auc_ci[1]
    assert audit.verdict.startswith("No membership leakage detected")
    assert audit.detectable_auc < 0.54  # the test has power at this size
    # and it is not a useless model: it learned the signal (70% is the ceiling)
    guesses = forward(SPEC, weights, data.x_test) >= 0.5
    assert np.mean(guesses == (data.y_test == 1)) > 0.6


@pytest.mark.parametrize(
    ("spec", "y", "predicted", "expected"),
    [
        (ModelSpec(1), [1, 0], [0.8, 0.8], [-np.log(0.8), -np.log(0.2)]),
        (
            ModelSpec(1, output="multiclass", num_classes=3),
            [2, 0],
            [[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]],
            [-np.log(0.7), -np.log(0.5)],
        ),
        (ModelSpec(1, output="continuous"), [1.0, -1.0], [1.5, 1.0], [0.25, 4.0]),
    ],
)
def test_per_example_loss_follows_the_label_kind(spec, y, predicted, expected):
    got = per_example_loss(spec, np.asarray(y), np.asarray(predicted))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
