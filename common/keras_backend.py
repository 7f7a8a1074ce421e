"""The Keras 3 (TensorFlow) training backend.

Importing this module imports TensorFlow (about 5 s); ``get_backend`` does so
only when a hospital asks for the Keras backend. The model is built once;
the whole round of local training runs inside one ``tf.function`` traced
once per optimizer, with mini-batches gathered by index from the local
training set, so no per-message rebuild, ``clear_session`` or re-trace.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from hospfed.common.model import ModelSpec, Weights
from hospfed.common.training import TrainPlan, batch_indices


def _single_threaded() -> None:
    # The models are tiny: one thread per process beats contention between
    # the simulation's worker processes on a 2-core machine.
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised by an earlier TF user
        pass


def build_keras_model(spec: ModelSpec) -> keras.Model:
    """Build the network of ``spec`` (outputs one logit)."""
    layers: list[Any] = [keras.Input(shape=(spec.input_dim,))]
    layers += [
        keras.layers.Dense(width, activation=spec.activation) for width in spec.hidden
    ]
    layers.append(keras.layers.Dense(1))
    return keras.Sequential(layers)


class KerasBackend:
    """A warm Keras model with compiled training and prediction.

    Parameters
    ----------
    spec : ModelSpec
        The model to build.

    """

    def __init__(self, spec: ModelSpec) -> None:
        _single_threaded()
        self.spec = spec
        self.model = build_keras_model(spec)
        variables = self.model.trainable_variables
        self._anchor = [
            tf.Variable(tf.zeros_like(v), trainable=False) for v in variables
        ]
        self._optimizers: dict[str, keras.optimizers.Optimizer] = {
            "sgd": keras.optimizers.SGD(learning_rate=0.01),
            "adam": keras.optimizers.Adam(learning_rate=0.001),
        }
        for optimizer in self._optimizers.values():
            optimizer.build(variables)
        self._train_fns = {
            name: self._make_train_fn(opt) for name, opt in self._optimizers.items()
        }
        self._predict_fn = tf.function(
            lambda x: tf.sigmoid(self.model(x, training=False))[:, 0],
            input_signature=[tf.TensorSpec([None, spec.input_dim], tf.float32)],
        )

    def get_weights(self) -> Weights:
        """Return the weights in the canonical layout (float32 copies)."""
        return [np.array(w, dtype=np.float32) for w in self.model.get_weights()]

    def set_weights(self, weights: Weights) -> None:
        """Load canonical-layout weights; raises if the shapes do not fit."""
        self.spec.check_weights(weights)
        self.model.set_weights([np.asarray(w, dtype=np.float32) for w in weights])

    def train(self, x: np.ndarray, y: np.ndarray, plan: TrainPlan) -> float:
        """Run ``plan.local_steps`` optimizer steps; return the mean loss."""
        optimizer = self._optimizers[plan.optimizer]
        if plan.reset_optimizer:
            for variable in optimizer.variables:
                variable.assign(tf.zeros_like(variable))
        optimizer.learning_rate.assign(plan.learning_rate)
        for anchor, variable in zip(
            self._anchor, self.model.trainable_variables, strict=True
        ):
            anchor.assign(variable)
        loss = self._train_fns[plan.optimizer](
            tf.constant(x, tf.float32),
            tf.constant(y, tf.float32),
            tf.constant(batch_indices(len(x), plan)),
            tf.constant(plan.proximal_mu, tf.float32),
        )
        return float(loss)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Return sigmoid outputs for the rows of ``x``."""
        return np.asarray(self._predict_fn(tf.constant(x, tf.float32)))

    def _make_train_fn(self, optimizer: keras.optimizers.Optimizer) -> Any:
        model, anchors = self.model, self._anchor
        signature = [
            tf.TensorSpec([None, self.spec.input_dim], tf.float32),
            tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([None, None], tf.int32),
            tf.TensorSpec([], tf.float32),
        ]

        @tf.function(input_signature=signature)
        def train_round(
            x: tf.Tensor, y: tf.Tensor, batches: tf.Tensor, mu: tf.Tensor
        ) -> tf.Tensor:
            total = tf.constant(0.0)
            steps = tf.shape(batches)[0]
            for step in tf.range(steps):
                rows = batches[step]
                xb, yb = tf.gather(x, rows), tf.gather(y, rows)
                with tf.GradientTape() as tape:
                    logits = model(xb, training=True)[:, 0]
                    loss = tf.reduce_mean(
                        tf.nn.sigmoid_cross_entropy_with_logits(
                            labels=yb, logits=logits
                        )
                    )
                    variables = model.trainable_variables
                    proximal = tf.add_n(
                        [
                            tf.reduce_sum(tf.square(v - a))
                            for v, a in zip(variables, anchors, strict=True)
                        ]
                    )
                    objective = loss + 0.5 * mu * proximal
                grads = tape.gradient(objective, variables)
                optimizer.apply(grads, variables)
                total += loss
            return total / tf.cast(steps, tf.float32)

        return train_round
