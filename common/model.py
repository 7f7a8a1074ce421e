"""The model spec every hospital and the coordinator agree on.

A :class:`ModelSpec` is frozen data: input width, hidden layer widths, hidden
activation and the output, which follows the label's kind: one logit for a
binary label (sigmoid, binary cross-entropy), one logit per class for a
multi-class label (softmax, cross-entropy), one value for a continuous label
(identity, squared error). Both training backends build the
same network from it. Weights travel as a list of NumPy arrays in one
canonical layout (Keras's: for each dense layer, a kernel of shape
``(inputs, outputs)`` then a bias of shape ``(outputs,)``), so one federation
can mix backends. Initial weights are drawn here, with NumPy, so the
coordinator never needs a deep-learning framework.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from hospfed.common.errors import ConfigError

Activation = Literal["relu", "tanh", "sigmoid"]
ACTIVATIONS: tuple[str, ...] = ("relu", "tanh", "sigmoid")

OutputKind = Literal["binary", "multiclass", "continuous"]
OUTPUT_KINDS: tuple[OutputKind, ...] = ("binary", "multiclass", "continuous")

Weights = list[np.ndarray]
"""Model weights in the canonical layout."""


@dataclass(frozen=True)
class ModelSpec:
    """A fully connected network for a binary, multi-class or continuous label.

    Parameters
    ----------
    input_dim : int
        Number of input features.
    hidden : tuple of int
        Width of each hidden layer; empty for a linear model (logistic,
        softmax or linear regression).
    activation : {"relu", "tanh", "sigmoid"}
        Activation of the hidden layers.
    output : {"binary", "multiclass", "continuous"}
        The label's kind: one logit (its sigmoid is the probability of 1),
        ``num_classes`` logits (their softmax), or one value.
    num_classes : int
        Classes of a multi-class label (labels 0 .. num_classes - 1); 2
        otherwise.

    """

    input_dim: int
    hidden: tuple[int, ...] = ()
    activation: Activation = "relu"
    output: OutputKind = "binary"
    num_classes: int = 2

    def __post_init__(self) -> None:
        if self.input_dim < 1:
            raise ConfigError(f"model input width must be >= 1, got {self.input_dim}")
        if any(width < 1 for width in self.hidden):
            raise ConfigError(f"hidden layer widths must be >= 1, got {self.hidden}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"unknown activation {self.activation!r}; allowed: "
                f"{', '.join(ACTIVATIONS)}"
            )
        if self.output not in OUTPUT_KINDS:
            raise ConfigError(
                f"unknown output {self.output!r}; allowed: {', '.join(OUTPUT_KINDS)}"
            )
        if self.output == "multiclass" and self.num_classes < 2:
            raise ConfigError(
                f"a multi-class output needs >= 2 classes, got {self.num_classes}"
            )
        if self.output != "multiclass" and self.num_classes != 2:
            raise ConfigError(
                f"num_classes applies to a multi-class output only, not {self.output}"
            )

    @property
    def output_width(self) -> int:
        """Outputs of the last layer: ``num_classes`` if multi-class, else 1."""
        return self.num_classes if self.output == "multiclass" else 1

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Widths from input to output, e.g. ``(13, 1)``."""
        return (self.input_dim, *self.hidden, self.output_width)

    def weight_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the canonical weight list."""
        shapes: list[tuple[int, ...]] = []
        for fan_in, fan_out in zip(
            self.layer_sizes, self.layer_sizes[1:], strict=False
        ):
            shapes += [(fan_in, fan_out), (fan_out,)]
        return shapes

    def check_weights(self, weights: Weights) -> None:
        """Raise :class:`ConfigError` unless ``weights`` fit this spec."""
        got = [tuple(w.shape) for w in weights]
        if got != self.weight_shapes():
            raise ConfigError(
                f"weights do not fit the model spec: got shapes {got}, "
                f"expected {self.weight_shapes()}"
            )


def initial_weights(spec: ModelSpec, seed: int) -> Weights:
    """Draw initial weights with PyTorch's default ``nn.Linear`` scheme.

    Kernel and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)). FLamby's reference
    numbers use PyTorch models; with Keras's Glorot default FedAvg on
    Fed-Heart-Disease ends about 0.06 lower (see the README's measured results).

    Parameters
    ----------
    spec : ModelSpec
        The model to initialise.
    seed : int
        Seed for NumPy's generator: same seed, same weights.

    Returns
    -------
    list of numpy.ndarray
        float32 weights in the canonical layout.

    """
    rng = np.random.default_rng(seed)
    weights: Weights = []
    for shape in spec.weight_shapes():
        fan_in = shape[0] if len(shape) == 2 else weights[-1].shape[0]
        bound = 1.0 / np.sqrt(fan_in)
        weights.append(rng.uniform(-bound, bound, size=shape).astype(np.float32))
    return weights
