"""One contract, passed by both training backends (Keras and PyTorch).

Each backend subclasses :class:`BackendContract`; the parity tests at the end
compare the two on the same weights and data.
"""

import numpy as np
import pytest

from hospfed.client.backends import evaluate, get_backend
from hospfed.client.privacy import (
    DpStep,
    expected_batch_size,
    poisson_sample_rate,
)
from hospfed.common.datasets.heart import load_hospital
from hospfed.common.model import ModelSpec, initial_weights
from hospfed.common.training import TrainPlan

SPEC = ModelSpec(13, hidden=(6,), activation="tanh")


def private_step(data, clip=1.0, noise=1.0, seed=5):
    return DpStep(
        noise_multiplier=noise,
        clip_norm=clip,
        sample_rate=poisson_sample_rate(len(data.y_train), 4),
        noise_seed=seed,
    )


class BackendContract:
    name: str

    @pytest.fixture
    def backend(self):
        backend = get_backend(self.name, SPEC)
        backend.set_weights(initial_weights(SPEC, 0))
        return backend

    def test_weights_round_trip_in_the_canonical_layout(self, backend):
        weights = initial_weights(SPEC, 3)
        backend.set_weights(weights)
        got = backend.get_weights()
        assert [w.shape for w in got] == SPEC.weight_shapes()
        for a, b in zip(got, weights, strict=True):
            np.testing.assert_array_equal(a, b)

    def test_plain_training_lowers_the_loss(self, backend):
        data = load_hospital("cleveland")
        before = evaluate(backend, data.x_train, data.y_train).loss
        backend.train(
            data.x_train,
            data.y_train,
            TrainPlan(learning_rate=0.05, local_steps=100, batch_size=4),
        )
        assert evaluate(backend, data.x_train, data.y_train).loss < before

    def test_private_training_lowers_the_loss(self, backend):
        data = load_hospital("cleveland")
        before = evaluate(backend, data.x_train, data.y_train).loss
        with pytest.warns(UserWarning, match="fixed seed"):
            backend.train(
                data.x_train,
                data.y_train,
                TrainPlan(learning_rate=0.05, local_steps=300, batch_size=4),
                private_step(data, noise=0.5),
            )
        assert evaluate(backend, data.x_train, data.y_train).loss < before

    def test_private_training_with_a_fixed_seed_is_reproducible(self, backend):
        data = load_hospital("va")
        plan = TrainPlan(learning_rate=0.05, local_steps=20, batch_size=4)
        runs = []
        for _ in range(2):
            backend.set_weights(initial_weights(SPEC, 0))
            with pytest.warns(UserWarning, match="fixed seed"):
                backend.train(data.x_train, data.y_train, plan, private_step(data))
            runs.append(backend.get_weights())
        np.testing.assert_array_equal(runs[0][0], runs[1][0])

    def test_secure_noise_differs_every_round(self, backend):
        data = load_hospital("va")
        step = DpStep(
            noise_multiplier=1.0,
            clip_norm=1.0,
            sample_rate=poisson_sample_rate(len(data.y_train), 4),
        )
        runs = []
        for _ in range(2):
            backend.set_weights(initial_weights(SPEC, 0))
            backend.train(
                data.x_train,
                data.y_train,
                TrainPlan(learning_rate=0.05, local_steps=5, batch_size=4),
                step,
            )
            runs.append(backend.get_weights()[0])
        assert not np.array_equal(runs[0], runs[1])

    def test_each_clipped_gradient_is_at_most_the_clip_norm(self, backend):
        data = load_hospital("hungary")
        x, y = data.x_train[:10], data.y_train[:10]
        for row in range(10):
            one = backend.clipped_gradient_sum(
                x[row : row + 1], y[row : row + 1], clip_norm=0.1
            )
            norm = np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in one))
            assert norm <= 0.1 + 1e-6


class TestKerasBackend(BackendContract):
    name = "keras"


class TestTorchBackend(BackendContract):
    name = "torch"


@pytest.fixture(scope="module")
def pair():
    keras, torch = get_backend("keras", SPEC), get_backend("torch", SPEC)
    return keras, torch


def test_same_weights_same_outputs(pair):
    weights = initial_weights(SPEC, 11)
    for backend in pair:
        backend.set_weights(weights)
    x = load_hospital("hungary").x_test
    np.testing.assert_allclose(pair[0].predict(x), pair[1].predict(x), atol=1e-5)


def test_one_sgd_step_gives_the_same_weights(pair):
    data = load_hospital("cleveland")
    plan = TrainPlan(learning_rate=0.1, local_steps=1, batch_size=8, seed=4)
    for backend in pair:
        backend.set_weights(initial_weights(SPEC, 2))
        backend.train(data.x_train, data.y_train, plan)
    for a, b in zip(pair[0].get_weights(), pair[1].get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("clip", [0.05, 0.5, 100.0])
def test_keras_clipped_gradient_sum_equals_opacus(pair, clip):
    data = load_hospital("cleveland")
    for backend in pair:
        backend.set_weights(initial_weights(SPEC, 9))
    x, y = data.x_train[:32], data.y_train[:32]
    ours = pair[0].clipped_gradient_sum(x, y, clip_norm=clip)
    opacus = pair[1].clipped_gradient_sum(x, y, clip_norm=clip)
    for a, b in zip(ours, opacus, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_keras_noise_has_the_dp_sgd_standard_deviation(pair):
    keras = pair[0]
    data = load_hospital("cleveland")
    keras.set_weights(initial_weights(SPEC, 1))
    x, y = data.x_train[:16], data.y_train[:16]
    clean = keras.clipped_gradient_sum(x, y, clip_norm=0.7)
    samples = []
    for seed in range(40):
        noisy = keras.clipped_gradient_sum(
            x, y, clip_norm=0.7, noise_std=1.3 * 0.7, seed=seed
        )
        samples += [(n - c).ravel() for n, c in zip(noisy, clean, strict=True)]
    noise = np.concatenate(samples)
    # 40 x 91 draws: the sample std of N(0, 0.91) is within 3% w.p. > 0.999.
    assert noise.std() == pytest.approx(1.3 * 0.7, rel=0.03)
    assert abs(noise.mean()) < 4 * 0.91 / np.sqrt(noise.size)


def test_both_backends_account_the_same_epsilon(pair):
    from hospfed.client.privacy import DpMechanism, epsilon_spent

    torch = pair[1]
    data = load_hospital("va")
    step = private_step(data, noise=1.1)
    with pytest.warns(UserWarning, match="fixed seed"):
        torch.train(
            data.x_train,
            data.y_train,
            TrainPlan(learning_rate=0.01, local_steps=25, batch_size=4),
            step,
        )
    torch.restore_accountant(
        [DpMechanism(noise_multiplier=1.1, sample_rate=step.sample_rate, steps=25)] * 2
    )
    with pytest.warns(UserWarning, match="fixed seed"):
        torch.train(
            data.x_train,
            data.y_train,
            TrainPlan(learning_rate=0.01, local_steps=25, batch_size=4),
            step,
        )
    history = [
        DpMechanism(noise_multiplier=1.1, sample_rate=step.sample_rate, steps=25)
    ] * 3
    assert torch.opacus_epsilon(1e-3) == pytest.approx(
        epsilon_spent(history, 1e-3), rel=1e-9
    )
    # The Keras path divides by the same expected batch size as Opacus.
    opacus_batch = torch._private.optimizer.expected_batch_size
    assert expected_batch_size(len(data.y_train), step.sample_rate) == opacus_batch
