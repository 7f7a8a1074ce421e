"""The Keras 3 (TensorFlow) training backend.

Importing this module imports TensorFlow (about 5 s); ``get_backend`` does so
only when a hospital asks for the Keras backend. The model is built once;
the whole round of local training runs inside one ``tf.function`` traced
once per optimizer, with mini-batches gathered by index from the local
training set, so no per-message rebuild, ``clear_session`` or re-trace.

DP-SGD is ours (tensorflow-privacy needs ``keras.optimizers.legacy``, gone in
Keras 3): Poisson batches are drawn with NumPy and padded to one width with a
mask; per-example gradients are vectorised, never a Python loop over
examples: one backward pass gives each example's gradient with respect to
every dense layer's pre-activations, from which per-example gradient norms
follow in closed form (the "ghost norm" identity for dense layers; the model
spec only has dense layers) and the clipped sum is one matrix product per
layer. Each example's gradient is clipped to the clip norm exactly as Opacus
does (factor ``min(1, C / (norm + 1e-6))``), summed, given Gaussian noise of standard
deviation ``noise_multiplier * C`` from counter-based stateless generators
seeded from the OS CSPRNG, and divided by Opacus's expected batch size.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras.layers import Dense

from hospfed.client.privacy import DpStep, expected_batch_size
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
    """Build the network of ``spec`` (its last layer outputs logits or a value)."""
    layers: list[Any] = [keras.Input(shape=(spec.input_dim,))]
    layers += [
        keras.layers.Dense(width, activation=spec.activation) for width in spec.hidden
    ]
    layers.append(keras.layers.Dense(spec.output_width))
    return keras.Sequential(layers)


def per_example_losses(spec: ModelSpec, y: tf.Tensor, outputs: tf.Tensor) -> tf.Tensor:
    """Each example's loss for the label's kind (as the PyTorch backend's).

    Binary cross-entropy on one logit, cross-entropy on ``num_classes``
    logits (``y`` holds class indices), or squared error of one value.
    """
    if spec.output == "multiclass":
        return tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(y, tf.int32), logits=outputs
        )
    if spec.output == "continuous":
        return tf.square(outputs[:, 0] - y)
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=outputs[:, 0])


def _prediction(spec: ModelSpec, outputs: tf.Tensor) -> tf.Tensor:
    if spec.output == "multiclass":
        return tf.nn.softmax(outputs, axis=1)
    if spec.output == "continuous":
        return outputs[:, 0]
    return tf.sigmoid(outputs[:, 0])


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
        self._private_fns: dict[str, Any] = {}
        self._noisy_sum_fn = tf.function(self._noisy_gradient_sum)
        self._predict_fn = tf.function(
            lambda x: _prediction(spec, self.model(x, training=False)),
            input_signature=[tf.TensorSpec([None, spec.input_dim], tf.float32)],
        )

    def get_weights(self) -> Weights:
        """Return the weights in the canonical layout (float32 copies)."""
        return [np.array(w, dtype=np.float32) for w in self.model.get_weights()]

    def set_weights(self, weights: Weights) -> None:
        """Load canonical-layout weights; raises if the shapes do not fit."""
        self.spec.check_weights(weights)
        self.model.set_weights([np.asarray(w, dtype=np.float32) for w in weights])

    def train(
        self,
        x: np.ndarray,
        y: np.ndarray,
        plan: TrainPlan,
        privacy: DpStep | None = None,
    ) -> float:
        """Run ``plan.local_steps`` optimizer steps; return the mean loss.

        With ``privacy``, every step is a DP-SGD step on a Poisson batch.
        """
        self._start_round(plan)
        if privacy is not None:
            return self._train_private(x, y, plan, privacy)
        loss = self._train_fns[plan.optimizer](
            tf.constant(x, tf.float32),
            tf.constant(y, tf.float32),
            tf.constant(batch_indices(len(x), plan)),
            tf.constant(plan.proximal_mu, tf.float32),
        )
        return float(loss)

    def _start_round(self, plan: TrainPlan) -> None:
        optimizer = self._optimizers[plan.optimizer]
        if plan.reset_optimizer:
            for variable in optimizer.variables:
                variable.assign(tf.zeros_like(variable))
        optimizer.learning_rate.assign(plan.learning_rate)
        for anchor, variable in zip(
            self._anchor, self.model.trainable_variables, strict=True
        ):
            anchor.assign(variable)

    def _train_private(
        self, x: np.ndarray, y: np.ndarray, plan: TrainPlan, privacy: DpStep
    ) -> float:
        rng = np.random.default_rng(privacy.entropy())
        rows, mask = poisson_batches(len(y), privacy.sample_rate, plan.local_steps, rng)
        seeds = rng.integers(0, 2**62, size=(plan.local_steps, 2), dtype=np.int64)
        if plan.optimizer not in self._private_fns:
            self._private_fns[plan.optimizer] = self._make_private_fn(
                self._optimizers[plan.optimizer]
            )
        loss = self._private_fns[plan.optimizer](
            tf.constant(x, tf.float32),
            tf.constant(y, tf.float32),
            tf.constant(rows),
            tf.constant(mask),
            tf.constant(seeds),
            tf.constant(plan.proximal_mu, tf.float32),
            tf.constant(privacy.clip_norm, tf.float32),
            tf.constant(privacy.noise_multiplier * privacy.clip_norm, tf.float32),
            tf.constant(expected_batch_size(len(y), privacy.sample_rate), tf.float32),
        )
        return float(loss)

    def clipped_gradient_sum(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        clip_norm: float,
        noise_std: float = 0.0,
        seed: int = 0,
    ) -> Weights:
        """Return the sum of per-example clipped gradients, plus optional noise.

        The DP-SGD gradient before division by the batch size, for testing
        against Opacus; the weights are unchanged.
        """
        mask = tf.ones([len(y)], tf.float32)
        grads, _ = self._noisy_sum_fn(
            tf.constant(x, tf.float32),
            tf.constant(y, tf.float32),
            mask,
            tf.constant([seed, 0], tf.int64),
            tf.constant(clip_norm, tf.float32),
            tf.constant(noise_std, tf.float32),
        )
        return [np.asarray(g, dtype=np.float32) for g in grads]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Return the probability of 1, class probabilities, or values per row."""
        return np.asarray(self._predict_fn(tf.constant(x, tf.float32)))

    def _make_train_fn(self, optimizer: keras.optimizers.Optimizer) -> Any:
        model, anchors, spec = self.model, self._anchor, self.spec
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
                    outputs = model(xb, training=True)
                    loss = tf.reduce_mean(per_example_losses(spec, yb, outputs))
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

    def _noisy_gradient_sum(
        self,
        xb: tf.Tensor,
        yb: tf.Tensor,
        mask: tf.Tensor,
        seed: tf.Tensor,
        clip: tf.Tensor,
        noise_std: tf.Tensor,
    ) -> tuple[list[tf.Tensor], tf.Tensor]:
        """Clipped per-example gradient sum over rows where ``mask`` is 1, + noise.

        Also returns the masked sum of the per-example losses.
        """
        layers = [layer for layer in self.model.layers if isinstance(layer, Dense)]
        inputs, outputs, activations = [], [], xb
        with tf.GradientTape() as tape:
            for layer in layers:
                inputs.append(activations)
                outputs.append(tf.matmul(activations, layer.kernel) + layer.bias)
                tape.watch(outputs[-1])
                activations = layer.activation(outputs[-1])
            losses = per_example_losses(self.spec, yb, activations)
            total_loss = tf.reduce_sum(losses)
        # Row i of each delta is example i's own gradient w.r.t. the layer's
        # pre-activation, so its kernel gradient is outer(input_i, delta_i),
        # whose squared norm is |input_i|^2 |delta_i|^2.
        deltas = tape.gradient(total_loss, outputs)
        squares = [
            (tf.reduce_sum(tf.square(a), axis=1) + 1.0)
            * tf.reduce_sum(tf.square(d), axis=1)
            for a, d in zip(inputs, deltas, strict=True)
        ]
        norms = tf.sqrt(tf.add_n(squares))
        factor = tf.minimum(1.0, clip / (norms + 1e-6)) * mask
        clipped: list[tf.Tensor] = []
        for a, d in zip(inputs, deltas, strict=True):
            weighted = d * factor[:, None]
            clipped += [tf.matmul(a, weighted, transpose_a=True)]
            clipped += [tf.reduce_sum(weighted, axis=0)]
        summed = []
        for index, total in enumerate(clipped):
            noise = tf.random.stateless_normal(
                tf.shape(total), seed=seed + tf.constant([0, 1], tf.int64) * index
            )
            summed.append(total + noise_std * noise)
        return summed, tf.reduce_sum(losses * mask)

    def _make_private_fn(self, optimizer: keras.optimizers.Optimizer) -> Any:
        model, anchors = self.model, self._anchor
        noisy_sum = self._noisy_gradient_sum
        signature = [
            tf.TensorSpec([None, self.spec.input_dim], tf.float32),
            tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([None, None], tf.int32),
            tf.TensorSpec([None, None], tf.float32),
            tf.TensorSpec([None, 2], tf.int64),
            *[tf.TensorSpec([], tf.float32)] * 4,
        ]

        @tf.function(input_signature=signature)
        def private_round(
            x: tf.Tensor,
            y: tf.Tensor,
            batches: tf.Tensor,
            masks: tf.Tensor,
            seeds: tf.Tensor,
            mu: tf.Tensor,
            clip: tf.Tensor,
            noise_std: tf.Tensor,
            expected: tf.Tensor,
        ) -> tf.Tensor:
            total = tf.constant(0.0)
            steps = tf.shape(batches)[0]
            for step in tf.range(steps):
                rows, mask = batches[step], masks[step]
                xb, yb = tf.gather(x, rows), tf.gather(y, rows)
                sums, loss_sum = noisy_sum(xb, yb, mask, seeds[step], clip, noise_std)
                variables = model.trainable_variables
                grads = [
                    s / expected + mu * (v - a)
                    for s, v, a in zip(sums, variables, anchors, strict=True)
                ]
                optimizer.apply(grads, variables)
                total += tf.math.divide_no_nan(loss_sum, tf.reduce_sum(mask))
            return total / tf.cast(steps, tf.float32)

        return private_round


def poisson_batches(
    num_examples: int, sample_rate: float, steps: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``steps`` Poisson batches, padded to one width.

    Each example joins each step independently with probability
    ``sample_rate``.

    Returns
    -------
    rows : numpy.ndarray
        int32 ``(steps, width)`` row indices (padding points at row 0).
    mask : numpy.ndarray
        float32 ``(steps, width)``: 1 for a sampled row, 0 for padding.

    """
    chosen = rng.random((steps, num_examples)) < sample_rate
    width = max(1, int(chosen.sum(axis=1).max()))
    rows = np.zeros((steps, width), dtype=np.int32)
    mask = np.zeros((steps, width), dtype=np.float32)
    for step in range(steps):
        picked = np.flatnonzero(chosen[step])
        rows[step, : len(picked)] = picked
        mask[step, : len(picked)] = 1.0
    return rows, mask
