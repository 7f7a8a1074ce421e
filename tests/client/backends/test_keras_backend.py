"""The Keras backend against NumPy references: layout, forward pass, SGD."""

import numpy as np
import pytest

from hospfed.client.backends import evaluate, get_backend
from hospfed.common.datasets.heart import load_hospital
from hospfed.common.errors import ConfigError
from hospfed.common.model import ModelSpec, initial_weights
from hospfed.common.training import TrainPlan, batch_indices


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def numpy_forward(weights, x, activation="relu"):
    h = x.astype(np.float64)
    layers = list(zip(weights[::2], weights[1::2], strict=True))
    for kernel, bias in layers[:-1]:
        h = h @ kernel + bias
        h = np.maximum(h, 0) if activation == "relu" else np.tanh(h)
    kernel, bias = layers[-1]
    return sigmoid(h @ kernel + bias)[:, 0]


@pytest.mark.parametrize("hidden", [(), (6,), (5, 3)])
def test_forward_pass_matches_numpy(hidden):
    spec = ModelSpec(13, hidden=hidden)
    backend = get_backend("keras", spec)
    weights = initial_weights(spec, 7)
    backend.set_weights(weights)
    x = load_hospital("hungary").x_test
    np.testing.assert_allclose(backend.predict(x), numpy_forward(weights, x), atol=1e-5)


def test_weights_round_trip_in_canonical_layout():
    spec = ModelSpec(13, hidden=(4,))
    backend = get_backend("keras", spec)
    weights = initial_weights(spec, 1)
    backend.set_weights(weights)
    got = backend.get_weights()
    assert [w.shape for w in got] == spec.weight_shapes()
    assert all(np.array_equal(a, b) for a, b in zip(got, weights, strict=True))


def test_backend_is_built_once_per_process_and_traced_once():
    spec = ModelSpec(13, hidden=(3,))
    backend = get_backend("keras", spec)
    assert get_backend("keras", spec) is backend
    backend.set_weights(initial_weights(spec, 0))
    for hospital, steps in (("cleveland", 5), ("switzerland", 7), ("va", 3)):
        data = load_hospital(hospital)
        backend.train(
            data.x_train,
            data.y_train,
            TrainPlan(learning_rate=0.01, local_steps=steps, batch_size=4),
        )
        backend.predict(data.x_test)
    assert backend._train_fns["sgd"].experimental_get_tracing_count() == 1
    assert backend._predict_fn.experimental_get_tracing_count() == 1


def test_unknown_backend():
    with pytest.raises(ConfigError, match="unknown backend 'jax'"):
        get_backend("jax", ModelSpec(2))


def test_set_weights_rejects_a_mismatched_model():
    with pytest.raises(ConfigError, match="do not fit"):
        get_backend("keras", ModelSpec(13)).set_weights(
            initial_weights(ModelSpec(5), 0)
        )


def test_sgd_steps_match_numpy_logistic_regression():
    spec = ModelSpec(13)
    data = load_hospital("cleveland")
    backend = get_backend("keras", spec)
    w, b = initial_weights(spec, 2)
    backend.set_weights([w, b])
    plan = TrainPlan(learning_rate=0.05, local_steps=3, batch_size=4, seed=9)
    backend.train(data.x_train, data.y_train, plan)
    w, b = w.astype(np.float64)[:, 0], b.astype(np.float64)
    for rows in batch_indices(len(data.y_train), plan):
        x, y = data.x_train[rows].astype(np.float64), data.y_train[rows]
        error = sigmoid(x @ w + b) - y
        w = w - plan.learning_rate * x.T @ error / len(rows)
        b = b - plan.learning_rate * error.mean()
    got_w, got_b = backend.get_weights()
    np.testing.assert_allclose(got_w[:, 0], w, atol=1e-5)
    np.testing.assert_allclose(got_b, b, atol=1e-5)


def test_proximal_term_keeps_weights_closer_to_the_start():
    spec = ModelSpec(13)
    data = load_hospital("va")
    backend = get_backend("keras", spec)
    start = initial_weights(spec, 0)
    moved = {}
    for mu in (0.0, 5.0):
        backend.set_weights(start)
        backend.train(
            data.x_train,
            data.y_train,
            TrainPlan(
                learning_rate=0.05, local_steps=50, batch_size=4, proximal_mu=mu, seed=1
            ),
        )
        moved[mu] = np.linalg.norm(backend.get_weights()[0] - start[0])
    assert moved[5.0] < 0.8 * moved[0.0]


def test_training_improves_the_local_loss():
    spec = ModelSpec(13, hidden=(8,))
    data = load_hospital("cleveland")
    backend = get_backend("keras", spec)
    backend.set_weights(initial_weights(spec, 0))
    before = evaluate(backend, data.x_train, data.y_train).loss
    backend.train(
        data.x_train,
        data.y_train,
        TrainPlan(learning_rate=0.01, local_steps=300, batch_size=8, optimizer="adam"),
    )
    assert evaluate(backend, data.x_train, data.y_train).loss < before - 0.1
