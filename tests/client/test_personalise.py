"""Personalisation after federated training: last-layer fine-tuning and Ditto."""

import contextlib
import functools
import subprocess
import sys

import numpy as np
import pytest

from hospfed.client.backends import evaluate, get_backend
from hospfed.client.personalise import (
    PERSONALISE_METHODS,
    PersonalPlan,
    personal_train_plan,
    personalise,
    representation,
)
from hospfed.client.privacy import (
    DpStep,
    InsecureRandomnessWarning,
    poisson_sample_rate,
)
from hospfed.common.errors import ConfigError
from hospfed.common.model import ModelSpec, initial_weights
from hospfed.common.training import TrainPlan

# Opacus's per-sample hooks on a model whose inputs need no gradient.
pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")

BACKEND_NAMES = ["keras", "torch"]
SPEC = ModelSpec(4, hidden=(8,), activation="relu")
RUN = TrainPlan(learning_rate=0.1, local_steps=200, batch_size=16, seed=1)


def rows(seed, n, rule):
    """Synthetic rows; rule A labels x0 + x1 > 0, rule B labels x0 - x1 > 0."""
    x = np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)
    score = x[:, 0] + x[:, 1] if rule == "A" else x[:, 0] - x[:, 1]
    return x, (score > 0).astype(np.float32)


# A hospital whose label rule (B) differs from the federation's (A).
X_HOSPITAL, Y_HOSPITAL = rows(2, 300, "B")
X_TRAIN, Y_TRAIN = X_HOSPITAL[:200], Y_HOSPITAL[:200]
X_HELD, Y_HELD = X_HOSPITAL[200:], Y_HOSPITAL[200:]


@functools.cache
def global_model(name):
    """The "global" model: SPEC trained on rule A by backend ``name``."""
    backend = get_backend(name, SPEC)
    backend.set_weights(initial_weights(SPEC, 0))
    backend.train(*rows(1, 300, "A"), RUN)
    return tuple(backend.get_weights())


def accuracy(name, weights, x, y):
    backend = get_backend(name, SPEC)
    backend.set_weights(weights)
    return evaluate(backend, x, y).accuracy


def distance(a, b):
    squares = [
        np.sum((u - v).astype(np.float64) ** 2) for u, v in zip(a, b, strict=True)
    ]
    return float(np.sqrt(sum(squares)))


def dp_step(noise=1.0, seed=7):
    return DpStep(
        noise_multiplier=noise,
        clip_norm=1.0,
        sample_rate=poisson_sample_rate(len(Y_TRAIN), RUN.batch_size),
        noise_seed=seed,
    )


def fine(steps=200, lr=0.1):
    return PersonalPlan(method="finetune", learning_rate=lr, local_steps=steps)


def ditto(lam, steps=200, lr=0.1):
    return PersonalPlan(
        method="ditto", learning_rate=lr, local_steps=steps, ditto_lambda=lam
    )


@pytest.mark.parametrize("name", BACKEND_NAMES)
@pytest.mark.parametrize(
    "spec",
    [
        ModelSpec(4, hidden=(8,), activation="relu"),
        ModelSpec(4, hidden=(8,), activation="tanh"),
        ModelSpec(4, hidden=(8,), activation="sigmoid"),
        ModelSpec(4, hidden=(5, 3), activation="tanh"),
        ModelSpec(4, hidden=(8,), output="multiclass", num_classes=3),
        ModelSpec(4),
    ],
    ids=["relu", "tanh", "sigmoid", "two-hidden", "multiclass", "linear"],
)
def test_representation_then_last_layer_is_the_backends_prediction(name, spec):
    # Larger than the default initialisation, so every activation is non-linear.
    weights = [3 * w for w in initial_weights(spec, 4)]
    x = np.random.default_rng(3).normal(size=(50, 4)).astype(np.float32)
    features = representation(spec, weights, x)
    assert features.dtype == np.float32
    assert features.shape == (50, spec.layer_sizes[-2])
    if not spec.hidden:
        np.testing.assert_array_equal(features, x)
    logits = features.astype(np.float64) @ weights[-2] + weights[-1]
    if spec.output == "multiclass":
        expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    else:
        expected = 1 / (1 + np.exp(-logits[:, 0]))
    backend = get_backend(name, spec)
    backend.set_weights(weights)
    np.testing.assert_allclose(backend.predict(x), expected, atol=2e-5)


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_finetune_changes_only_the_head_and_fits_the_hospital(name):
    start = list(global_model(name))
    weights = personalise(name, SPEC, start, X_TRAIN, Y_TRAIN, fine(), RUN)
    assert [w.shape for w in weights] == SPEC.weight_shapes()
    assert all(w.dtype == np.float32 for w in weights)
    for body, before in zip(weights[:-2], start[:-2], strict=True):
        np.testing.assert_array_equal(body, before)
    assert not np.array_equal(weights[-2], start[-2])
    before = accuracy(name, start, X_HELD, Y_HELD)
    after = accuracy(name, weights, X_HELD, Y_HELD)
    assert after > before + 0.1
    assert accuracy(name, weights, X_TRAIN, Y_TRAIN) > accuracy(
        name, start, X_TRAIN, Y_TRAIN
    )


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_finetune_of_a_linear_model_is_training_the_whole_model(name):
    spec = ModelSpec(4)
    start = initial_weights(spec, 5)
    weights = personalise(name, spec, start, X_TRAIN, Y_TRAIN, fine(steps=30), RUN)
    backend = get_backend(name, spec)
    backend.set_weights(start)
    backend.train(X_TRAIN, Y_TRAIN, personal_train_plan(fine(steps=30), RUN))
    for got, expected in zip(weights, backend.get_weights(), strict=True):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_ditto_with_a_huge_lambda_stays_at_the_global_model(name):
    start = list(global_model(name))
    plan = ditto(1e4, steps=50, lr=5e-5)
    weights = personalise(name, SPEC, start, X_TRAIN, Y_TRAIN, plan, RUN)
    assert distance(weights, start) < 1e-3


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_ditto_moves_further_the_smaller_lambda(name):
    start = list(global_model(name))
    free = personalise(name, SPEC, start, X_TRAIN, Y_TRAIN, ditto(0.0), RUN)
    pulled = personalise(name, SPEC, start, X_TRAIN, Y_TRAIN, ditto(1.0), RUN)
    assert distance(free, start) > distance(pulled, start) > 0
    # Every layer is personal, the body too.
    assert all(not np.array_equal(a, b) for a, b in zip(free, start, strict=True))
    assert (
        accuracy(name, free, X_HELD, Y_HELD)
        > accuracy(name, start, X_HELD, Y_HELD) + 0.1
    )


@pytest.mark.parametrize("name", BACKEND_NAMES)
@pytest.mark.parametrize("method", PERSONALISE_METHODS)
def test_private_personalisation_is_noisy_and_reproducible_with_a_seed(name, method):
    start = list(global_model(name))
    personal = PersonalPlan(method=method, learning_rate=0.1, local_steps=20)
    plain = personalise(name, SPEC, start, X_TRAIN, Y_TRAIN, personal, RUN)
    runs = []
    for _ in range(2):
        with pytest.warns(InsecureRandomnessWarning):
            runs.append(
                personalise(
                    name, SPEC, start, X_TRAIN, Y_TRAIN, personal, RUN, dp_step()
                )
            )
    private = runs[0]
    assert [w.shape for w in private] == SPEC.weight_shapes()
    assert all(np.all(np.isfinite(w)) for w in private)
    assert not np.array_equal(private[-2], plain[-2])
    for first, second in zip(*runs, strict=True):
        np.testing.assert_array_equal(first, second)
    if method == "finetune":  # the body is untouched under DP too
        np.testing.assert_array_equal(private[0], start[0])


@pytest.mark.parametrize("name", BACKEND_NAMES)
@pytest.mark.parametrize("private", [False, True], ids=["plain", "dp"])
def test_personalising_leaves_the_federated_rounds_unchanged(name, private):
    # The client's backend for SPEC is shared with personalisation (get_backend
    # keeps one per process): a round after it must be the round before it.
    start = list(global_model(name))
    step = dp_step(seed=11) if private else None
    plan = TrainPlan(learning_rate=0.05, local_steps=10, batch_size=16, seed=3)

    def federated_round():
        backend = get_backend(name, SPEC)
        backend.set_weights(start)
        backend.train(X_TRAIN, Y_TRAIN, plan, step)
        return backend.get_weights()

    warns = pytest.warns(InsecureRandomnessWarning)
    with warns if private else contextlib.nullcontext():
        before = federated_round()
        for method in PERSONALISE_METHODS:
            personal = PersonalPlan(method=method, learning_rate=0.2, local_steps=15)
            # A copy of the rows: the torch backend's Opacus engine is rebuilt.
            personalise(name, SPEC, start, X_TRAIN.copy(), Y_TRAIN, personal, RUN, step)
        after = federated_round()
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", BACKEND_NAMES)
@pytest.mark.parametrize("method", PERSONALISE_METHODS)
def test_global_weights_are_not_modified_nor_aliased(name, method):
    start = list(global_model(name))
    kept = [w.copy() for w in start]
    personal = PersonalPlan(method=method, learning_rate=0.5, local_steps=20)
    weights = personalise(name, SPEC, start, X_TRAIN, Y_TRAIN, personal, RUN)
    for a, b in zip(start, kept, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not any(np.shares_memory(w, s) for w in weights for s in start)
    result = [w.copy() for w in weights]
    other = PersonalPlan(method=method, learning_rate=0.05, local_steps=5)
    personalise(name, SPEC, start, X_TRAIN, Y_TRAIN, other, RUN)  # same backends
    for a, b in zip(weights, result, strict=True):
        np.testing.assert_array_equal(a, b)


def test_personal_train_plan():
    run = TrainPlan(
        learning_rate=0.3,
        local_steps=9,
        batch_size=32,
        optimizer="adam",
        proximal_mu=0.5,
        seed=4,
        reset_optimizer=False,
    )
    plan = personal_train_plan(ditto(2.0, steps=7, lr=0.01), run)
    assert plan == TrainPlan(
        learning_rate=0.01,
        local_steps=7,
        batch_size=32,
        optimizer="adam",
        proximal_mu=2.0,
        seed=4,
        reset_optimizer=True,
    )
    assert personal_train_plan(fine(steps=7, lr=0.01), run).proximal_mu == 0.0


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"method": "fedper"}, "personalise: unknown method 'fedper'"),
        ({"learning_rate": 0.0}, "personal-learning-rate"),
        ({"learning_rate": float("nan")}, "personal-learning-rate"),
        ({"local_steps": 0}, "personal-steps"),
        ({"ditto_lambda": -0.1}, "ditto-lambda"),
        ({"ditto_lambda": float("inf")}, "ditto-lambda"),
    ],
)
def test_personal_plan_refuses_bad_values(changes, key):
    values = {"method": "ditto", "learning_rate": 0.1, "local_steps": 5}
    # The message names the key of the coordinator's instructions.
    with pytest.raises(ConfigError, match=key):
        PersonalPlan(**(values | changes))


def test_weights_or_rows_that_do_not_fit_the_model_are_refused():
    start = initial_weights(SPEC, 0)
    with pytest.raises(ConfigError, match="weights do not fit"):
        personalise("keras", SPEC, start[:-2], X_TRAIN, Y_TRAIN, fine(), RUN)
    with pytest.raises(ConfigError, match="4 inputs"):
        personalise("keras", SPEC, start, X_TRAIN[:, :3], Y_TRAIN, fine(), RUN)
    with pytest.raises(ConfigError, match="labels"):
        personalise("keras", SPEC, start, X_TRAIN, Y_TRAIN[:5], fine(), RUN)
    with pytest.raises(ConfigError, match="unknown backend"):
        personalise("jax", SPEC, start, X_TRAIN, Y_TRAIN, fine(), RUN)


def test_importing_the_module_loads_no_framework():
    code = (
        "import sys, hospfed.client.personalise\n"
        "assert 'tensorflow' not in sys.modules and 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_plan_is_the_one_the_coordinator_sends():
    from hospfed.common import personal

    assert PersonalPlan is personal.PersonalPlan
    assert PERSONALISE_METHODS == ("finetune", "ditto")
