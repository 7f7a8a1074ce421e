import numpy as np
import pytest

from hospfed.common.errors import ConfigError
from hospfed.common.metrics import evaluate_probabilities
from hospfed.common.model import ModelSpec, initial_weights
from hospfed.common.training import TrainPlan, batch_indices


def test_weight_shapes_follow_the_canonical_layout():
    spec = ModelSpec(13, hidden=(8, 4))
    assert spec.weight_shapes() == [(13, 8), (8,), (8, 4), (4,), (4, 1), (1,)]


def test_initial_weights_are_pytorch_style_and_seeded():
    spec = ModelSpec(16, hidden=(4,))
    a, b = initial_weights(spec, 3), initial_weights(spec, 3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], initial_weights(spec, 4)[0])
    assert np.abs(a[0]).max() <= 1 / np.sqrt(16) and np.abs(a[1]).max() <= 1 / 4
    assert np.abs(a[2]).max() <= 1 / np.sqrt(4)
    assert all(w.dtype == np.float32 for w in a)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_dim": 0}, "input width"),
        ({"input_dim": 3, "hidden": (0,)}, "hidden"),
        ({"input_dim": 3, "activation": "gelu"}, "unknown activation 'gelu'"),
    ],
)
def test_bad_model_spec(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ModelSpec(**kwargs)


def test_check_weights_rejects_wrong_shapes():
    with pytest.raises(ConfigError, match="do not fit"):
        ModelSpec(3).check_weights([np.zeros((4, 1)), np.zeros(1)])


def test_batches_visit_every_example_once_per_epoch():
    plan = TrainPlan(learning_rate=0.1, local_steps=10, batch_size=5, seed=1)
    batches = batch_indices(25, plan)
    assert batches.shape == (10, 5)
    first, second = batches[:5].ravel(), batches[5:].ravel()
    assert sorted(first) == list(range(25)) == sorted(second)
    assert not np.array_equal(first, second)
    assert np.array_equal(batches, batch_indices(25, plan))


def test_batches_larger_than_the_dataset_cycle():
    batches = batch_indices(
        3, TrainPlan(learning_rate=0.1, local_steps=2, batch_size=4)
    )
    assert batches.shape == (2, 4) and set(batches.ravel()) == {0, 1, 2}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"learning_rate": 0}, "learning rate"),
        ({"local_steps": 0}, "local steps"),
        ({"batch_size": 0}, "batch size"),
        ({"optimizer": "rmsprop"}, "unknown optimizer"),
        ({"proximal_mu": -1}, "proximal mu"),
    ],
)
def test_bad_train_plan(kwargs, message):
    base = {"learning_rate": 0.1, "local_steps": 1, "batch_size": 1}
    with pytest.raises(ConfigError, match=message):
        TrainPlan(**(base | kwargs))


def test_metrics_of_known_predictions():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.9])
    result = evaluate_probabilities(y, p)
    assert result.accuracy == 0.5
    assert result.auc == 0.75
    expected = -np.mean(np.log([0.9, 0.4, 0.4, 0.9]))
    assert result.loss == pytest.approx(expected)
    assert result.num_examples == 4


def test_auc_is_nan_for_a_single_class():
    assert np.isnan(evaluate_probabilities(np.ones(3), np.full(3, 0.7)).auc)
