"""Binary, multi-class and continuous labels, in both backends and both DP-SGD paths.

Each kind is checked as the binary model always was: the two backends give
the same outputs for the same weights, the same weights after one SGD step,
and our Keras DP-SGD's clipped per-example gradient sum equals Opacus's on
the same batch; training (plain and private) lowers the loss; metrics follow
the kind.
"""

import math

import numpy as np
import pytest

from hospfed.client.backends import evaluate, get_backend
from hospfed.client.privacy import DpStep, poisson_sample_rate
from hospfed.common.metrics import evaluate_predictions
from hospfed.common.model import ModelSpec, initial_weights
from hospfed.common.training import TrainPlan

KINDS = {
    "binary": ModelSpec(7, hidden=(5,), activation="tanh"),
    "multiclass": ModelSpec(
        7, hidden=(5,), activation="tanh", output="multiclass", num_classes=3
    ),
    "continuous": ModelSpec(7, hidden=(5,), activation="tanh", output="continuous"),
}


def labelled(kind, rows=240, seed=0):
    """A learnable synthetic set for ``kind`` (inputs standardised)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 7)).astype(np.float32)
    score = x @ rng.standard_normal(7) + 0.3 * rng.standard_normal(rows)
    if kind == "binary":
        y = (score > 0).astype(np.float32)
    elif kind == "multiclass":
        y = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3])).astype(np.float32)
    else:
        y = (score / score.std()).astype(np.float32)
    return x, y


@pytest.fixture(scope="module", params=sorted(KINDS))
def kind(request):
    return request.param


@pytest.mark.parametrize("name", ["keras", "torch"])
def test_plain_and_private_training_lower_the_loss(name, kind):
    spec = KINDS[kind]
    backend = get_backend(name, spec)
    x, y = labelled(kind)
    for step in (
        None,
        DpStep(
            noise_multiplier=0.5,
            clip_norm=1.0,
            sample_rate=poisson_sample_rate(len(y), 8),
        ),
    ):
        backend.set_weights(initial_weights(spec, 1))
        before = evaluate(backend, x, y).loss
        backend.train(
            x, y, TrainPlan(learning_rate=0.05, local_steps=150, batch_size=8), step
        )
        assert evaluate(backend, x, y).loss < 0.9 * before


def test_same_weights_same_outputs(kind):
    spec = KINDS[kind]
    keras, torch = get_backend("keras", spec), get_backend("torch", spec)
    weights = initial_weights(spec, 11)
    for backend in (keras, torch):
        backend.set_weights(weights)
    x, _ = labelled(kind, rows=50, seed=3)
    out = keras.predict(x)
    assert out.shape == ((50, 3) if kind == "multiclass" else (50,))
    np.testing.assert_allclose(out, torch.predict(x), atol=1e-5)


def test_one_sgd_step_gives_the_same_weights(kind):
    spec = KINDS[kind]
    pair = (get_backend("keras", spec), get_backend("torch", spec))
    x, y = labelled(kind)
    plan = TrainPlan(learning_rate=0.1, local_steps=1, batch_size=8, seed=4)
    for backend in pair:
        backend.set_weights(initial_weights(spec, 2))
        backend.train(x, y, plan)
    for a, b in zip(pair[0].get_weights(), pair[1].get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("clip", [0.05, 0.5, 100.0])
def test_keras_clipped_gradient_sum_equals_opacus(kind, clip):
    spec = KINDS[kind]
    pair = (get_backend("keras", spec), get_backend("torch", spec))
    for backend in pair:
        backend.set_weights(initial_weights(spec, 9))
    x, y = labelled(kind, rows=32, seed=5)
    ours = pair[0].clipped_gradient_sum(x, y, clip_norm=clip)
    opacus = pair[1].clipped_gradient_sum(x, y, clip_norm=clip)
    for a, b in zip(ours, opacus, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_metrics_follow_the_kind():
    binary = evaluate_predictions(
        "binary", np.array([0, 1, 1]), np.array([0.2, 0.7, 0.4])
    )
    assert binary.accuracy == pytest.approx(2 / 3) and binary.auc == 1.0
    assert math.isnan(binary.rmse) and math.isnan(binary.macro_f1)
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.1, 0.4]])
    multi = evaluate_predictions("multiclass", np.array([0, 1, 2]), proba)
    assert multi.accuracy == pytest.approx(2 / 3)
    assert multi.loss == pytest.approx(-np.mean(np.log([0.7, 0.8, 0.4])))
    # classes 0, 1, 2: F1 2/3, 1, 0 -> macro 5/9
    assert multi.macro_f1 == pytest.approx(5 / 9)
    assert math.isnan(multi.auc)
    cont = evaluate_predictions(
        "continuous", np.array([1.0, 2.0]), np.array([1.5, 1.0])
    )
    assert cont.loss == pytest.approx(0.625) and cont.rmse == pytest.approx(0.625**0.5)
    assert cont.mae == pytest.approx(0.75) and math.isnan(cont.accuracy)


def test_a_bad_output_spec_is_refused():
    from hospfed.common.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown output 'ordinal'"):
        ModelSpec(3, output="ordinal")
    with pytest.raises(ConfigError, match=">= 2 classes"):
        ModelSpec(3, output="multiclass", num_classes=1)
    with pytest.raises(ConfigError, match="multi-class output only"):
        ModelSpec(3, output="continuous", num_classes=4)
    assert ModelSpec(3, output="multiclass", num_classes=4).weight_shapes()[-1] == (4,)


def test_the_output_kind_travels_in_the_instructions():
    from hospfed.common.datasets import FED_HEART_TASK
    from hospfed.common.datasets.heart_schema import FED_HEART_SCHEMA
    from hospfed.common.protocol import decode_spec, encode_instructions

    spec = KINDS["multiclass"]
    plan = TrainPlan(learning_rate=0.1, local_steps=1, batch_size=8)
    config = encode_instructions(plan, spec, 1, FED_HEART_SCHEMA, task=FED_HEART_TASK)
    assert decode_spec(config) == spec
