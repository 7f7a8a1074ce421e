"""Personalisation: each hospital adapts the final global model on its own data.

After federated training a hospital may keep a model of its own, trained
locally from the global weights on its training rows; nothing leaves the
hospital. Two methods (:data:`PERSONALISE_METHODS`):

``"finetune"``
    Fine-tune the last layer only, on the global model's frozen
    representation (FedPer / FedRep head adaptation, done post hoc). The
    penultimate activations of every training row are computed once in NumPy
    with the global weights, and a head-only model (a linear model from the
    last hidden width to the output) is trained on them with the same
    backend, from the global last kernel and bias. The body is returned
    unchanged.
``"ditto"``
    Ditto's personal model (Li, Hu, Beirami, Smith, ICML 2021): train every
    layer from the global weights ``w*`` on the local objective
    ``h_k(v; w*) = F_k(v) + lambda / 2 * ||v - w*||^2``, with the backends'
    proximal term (FedProx's, anchored at the weights training starts from).

:class:`PersonalPlan` (and :data:`PERSONALISE_METHODS`) live in
:mod:`hospfed.common.personal`, shared with the coordinator that sends the
plan, and are re-exported here. The backends are imported lazily, through
:func:`~hospfed.client.backends.get_backend`, so importing this module loads
neither TensorFlow nor torch.
"""

from __future__ import annotations

import numpy as np

from hospfed.client.privacy import DpStep
from hospfed.common.errors import ConfigError
from hospfed.common.model import ModelSpec, Weights
from hospfed.common.personal import PERSONALISE_METHODS, PersonalPlan
from hospfed.common.training import TrainPlan

__all__ = [
    "PERSONALISE_METHODS",
    "PersonalPlan",
    "hidden_activations",
    "personal_train_plan",
    "personalise",
    "representation",
]


def personal_train_plan(personal: PersonalPlan, train: TrainPlan) -> TrainPlan:
    """The plan personal training runs (what a DP ledger must authorise).

    Parameters
    ----------
    personal : PersonalPlan
        Supplies the learning rate, the steps and, for Ditto, the proximal
        coefficient ``ditto_lambda``.
    train : TrainPlan
        The run's plan: supplies the batch size, optimizer and seed.

    Returns
    -------
    TrainPlan
        With ``proximal_mu`` 0 for ``"finetune"``, ``ditto_lambda`` for
        ``"ditto"``, and a fresh optimizer state.

    """
    return TrainPlan(
        learning_rate=personal.learning_rate,
        local_steps=personal.local_steps,
        batch_size=train.batch_size,
        optimizer=train.optimizer,
        proximal_mu=personal.ditto_lambda if personal.method == "ditto" else 0.0,
        seed=train.seed,
        reset_optimizer=True,
    )


def representation(spec: ModelSpec, weights: Weights, x: np.ndarray) -> np.ndarray:
    """Penultimate-layer activations of ``x`` under ``weights``.

    Parameters
    ----------
    spec : ModelSpec
        The model ``weights`` belong to.
    weights : list of numpy.ndarray
        Canonical-layout weights (checked against ``spec``).
    x : numpy.ndarray
        Inputs of shape ``(n, spec.input_dim)``.

    Returns
    -------
    numpy.ndarray
        float32 of shape ``(n, spec.hidden[-1])``; ``x`` itself (as float32)
        when the model has no hidden layer. Computed in float64, so it is
        at least as exact as the backends' float32 forward pass.

    """
    spec.check_weights(weights)
    _check_inputs(spec, x)
    if not spec.hidden:
        return np.ascontiguousarray(x, dtype=np.float32)
    return np.ascontiguousarray(hidden_activations(spec, weights, x), dtype=np.float32)


def hidden_activations(spec: ModelSpec, weights: Weights, x: np.ndarray) -> np.ndarray:
    """The last hidden layer's activations of ``x``, in float64 (``x`` if none).

    The one NumPy forward pass of the hidden layers: the personalised head's
    representation and :func:`hospfed.client.predict.forward` both use it.
    """
    activations = np.asarray(x, dtype=np.float64)
    for kernel, bias in zip(weights[:-2:2], weights[1:-2:2], strict=True):
        z = activations @ kernel.astype(np.float64) + bias.astype(np.float64)
        if spec.activation == "relu":
            activations = np.maximum(z, 0.0)
        elif spec.activation == "tanh":
            activations = np.tanh(z)
        else:  # sigmoid, in a form that cannot overflow
            activations = 0.5 * (1.0 + np.tanh(0.5 * z))
    return activations


def personalise(
    backend_name: str,
    spec: ModelSpec,
    global_weights: Weights,
    x_train: np.ndarray,
    y_train: np.ndarray,
    personal: PersonalPlan,
    train: TrainPlan,
    privacy: DpStep | None = None,
) -> Weights:
    """Return the hospital's personalised weights.

    ``"finetune"`` trains the last layer only: a head-only model
    ``ModelSpec(input_dim=last_hidden_width, hidden=())`` with the run's
    output, on :func:`representation` of the training rows, from the global
    last kernel and bias; the body is returned as the global body.

    ``"ditto"`` trains every layer from the global weights ``w*`` with the
    proximal term ``ditto_lambda / 2 * ||v - w*||^2``. Solving Ditto's
    personal objective after federated training is faithful to Ditto: there
    the global model's updates never depend on the personal models, and the
    personal objective ``h_k(v; w*) = F_k(v) + lambda / 2 * ||v - w*||^2``
    depends only on the final global ``w*``. Solving it after the last round
    therefore targets the same personal model as the interleaved algorithm,
    which interleaves the personal steps with the rounds only for wall-clock
    efficiency.

    Parameters
    ----------
    backend_name : str
        ``"keras"`` or ``"torch"``.
    spec : ModelSpec
        The federation's model.
    global_weights : list of numpy.ndarray
        The final global model, canonical layout; never modified.
    x_train, y_train : numpy.ndarray
        The hospital's training rows and labels.
    personal : PersonalPlan
        The method, learning rate, steps and Ditto's lambda.
    train : TrainPlan
        The run's plan: batch size, optimizer and seed come from it (see
        :func:`personal_train_plan`).
    privacy : DpStep or None
        Run every step as DP-SGD; its sample rate must be the one of the
        run's batch size on ``len(y_train)`` rows.

    Returns
    -------
    list of numpy.ndarray
        float32 personalised weights in the canonical layout (fresh arrays,
        aliasing neither the input nor a backend).

    Raises
    ------
    ConfigError
        If the weights do not fit ``spec``, the data does not fit the
        model, or the backend is unknown.

    """
    from hospfed.client.backends import get_backend

    spec.check_weights(global_weights)
    start = [np.array(w, dtype=np.float32, copy=True) for w in global_weights]
    # Float32 and contiguous: the same object when it already is, as the
    # federated rounds pass it, so a warm Opacus engine bound to it is reused;
    # otherwise a copy the engine then holds (its identity cannot be reused).
    x = np.ascontiguousarray(x_train, dtype=np.float32)
    y = np.ascontiguousarray(y_train, dtype=np.float32)
    _check_inputs(spec, x)
    if len(y) != len(x):
        raise ConfigError(f"{len(x)} training rows but {len(y)} labels")
    plan = personal_train_plan(personal, train)
    if personal.method == "ditto":
        backend = get_backend(backend_name, spec)
        backend.set_weights(start)  # get_backend's model is shared: always load
        backend.train(x, y, plan, privacy)
        return [np.array(w, dtype=np.float32, copy=True) for w in backend.get_weights()]
    # The body is frozen at the global weights, so each row's representation
    # is a fixed, deterministic function of that row alone (the global model
    # is already released). DP-SGD on the head, with per-example clipping of
    # the head's gradient, is then exactly DP-SGD on the records
    # (representation(x_i), y_i): neighbouring training sets map to
    # neighbouring sets, so the head is DP with the same guarantee and the
    # same ledger entry as any other round of these steps.
    head_spec = ModelSpec(
        input_dim=spec.layer_sizes[-2],
        hidden=(),
        activation=spec.activation,
        output=spec.output,
        num_classes=spec.num_classes,
    )
    features = representation(spec, start, x)
    # A separate warm backend (its own model, optimizers and Opacus engine);
    # with no hidden layer head_spec == spec and it is the full model's.
    head = get_backend(backend_name, head_spec)
    head.set_weights(start[-2:])
    head.train(features, y, plan, privacy)
    new_head = [np.array(w, dtype=np.float32, copy=True) for w in head.get_weights()]
    return start[:-2] + new_head


def _check_inputs(spec: ModelSpec, x: np.ndarray) -> None:
    if x.ndim != 2 or x.shape[1] != spec.input_dim:
        raise ConfigError(
            f"the model takes rows of {spec.input_dim} inputs, got an array of "
            f"shape {x.shape}"
        )
