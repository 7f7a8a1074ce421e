"""The one place every reply passes before it leaves the hospital.

:func:`make_outgoing_policy` builds a Flower client mod (as Flower's own
``localdp_mod`` does cross-cutting policy): it lets a reply out only if it
holds exactly the model's arrays (the count, shapes and dtype of the run's
model spec) and metrics from the whitelist, and records it in the
hospital's audit log (:mod:`hospfed.client.audit`) before it is sent. A
reply that breaks the rule is replaced by an error: nothing else leaves.
Only train and evaluate messages, and the coordinator's query for sums over
the training inputs (federation-wide standardisation:
:mod:`hospfed.common.scaling`), are answered.

With secure aggregation, place this mod inside ``secaggplus_mod`` (later in
the ``mods`` list), so it checks and records the plain update before it is
masked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from flwr.app.message import Context, Message
from flwr.app.message_type import MessageType
from flwr.clientapp.typing import ClientAppCallable, Mod
from flwr.common import parameters_to_ndarrays
from flwr.common.constant import MessageTypeLegacy
from flwr.compat.common import recorddict_compat as compat

from hospfed.client.audit import append_audit_entry
from hospfed.client.data import NodeSettings
from hospfed.common.errors import ConfigError
from hospfed.common.protocol import (
    METRIC_WHITELIST,
    PROPERTY_WHITELIST,
    Key,
    decode_round,
    decode_spec,
)

__all__ = ["check_reply", "make_outgoing_policy"]


def check_reply(
    arrays: list[np.ndarray], metrics: dict[str, Any], config: dict[str, Any]
) -> None:
    """Raise ConfigError unless the reply holds only the model and whitelisted metrics.

    Parameters
    ----------
    arrays : list of numpy.ndarray
        The arrays about to be sent (empty for an evaluation).
    metrics : dict
        The metrics about to be sent.
    config : dict
        The round's instructions (they carry the model spec).

    """
    extra = sorted(set(metrics) - METRIC_WHITELIST)
    if extra:
        raise ConfigError(f"reply refused: metrics {extra} are not whitelisted")
    if not arrays:
        return
    expected = decode_spec(config).weight_shapes()
    shapes = [tuple(a.shape) for a in arrays]
    if shapes != expected:
        raise ConfigError(
            f"reply refused: arrays of shapes {shapes} are not the model's {expected}"
        )
    if any(a.dtype != np.float32 for a in arrays):
        raise ConfigError("reply refused: model arrays must be float32")


def make_outgoing_policy(resolve: Callable[[Context], NodeSettings]) -> Mod:
    """Build the mod that checks and records every reply of this hospital.

    Parameters
    ----------
    resolve : callable
        Finds the node's settings (its state directory holds the audit log).

    Returns
    -------
    Mod
        A Flower client mod.

    """

    def outgoing_policy(
        msg: Message, ctxt: Context, call_next: ClientAppCallable
    ) -> Message:
        kind = msg.metadata.message_type
        if kind == MessageTypeLegacy.GET_PROPERTIES:
            return _sums_reply(msg, ctxt, call_next, resolve)
        if kind not in (MessageType.TRAIN, MessageType.EVALUATE):
            raise ConfigError(
                f"this hospital answers train, evaluate and sums queries only, "
                f"not {kind}"
            )
        reply = call_next(msg, ctxt)
        if reply.has_error():
            return reply
        train = kind == MessageType.TRAIN
        instructions = (
            compat.recorddict_to_fitins(msg.content, keep_input=True).config
            if train
            else compat.recorddict_to_evaluateins(msg.content, keep_input=True).config
        )
        if train:
            result = compat.recorddict_to_fitres(reply.content, keep_input=True)
            arrays = parameters_to_ndarrays(result.parameters)
            metrics, examples = dict(result.metrics), result.num_examples
        else:
            evaluation = compat.recorddict_to_evaluateres(reply.content)
            arrays, examples = [], evaluation.num_examples
            metrics = dict(evaluation.metrics) | {Key.LOSS: evaluation.loss}
        check_reply(arrays, metrics, dict(instructions))
        settings = resolve(ctxt)
        if settings.state_dir is not None:
            epsilon = metrics.get(Key.EPSILON)
            append_audit_entry(
                settings.state_dir,
                run=str(ctxt.run_id),
                server_round=decode_round(instructions)[0],
                message_type=str(kind),
                arrays=arrays,
                metrics=metrics,
                num_examples=int(examples),
                epsilon=None if epsilon is None else float(epsilon),
            )
        return reply

    return outgoing_policy


def _sums_reply(
    msg: Message,
    ctxt: Context,
    call_next: ClientAppCallable,
    resolve: Callable[[Context], NodeSettings],
) -> Message:
    """Let a sums query's answer out only with whitelisted properties; audit it."""
    reply = call_next(msg, ctxt)
    if reply.has_error():
        return reply
    properties = dict(compat.recorddict_to_getpropertiesres(reply.content).properties)
    extra = sorted(set(properties) - PROPERTY_WHITELIST)
    if extra:
        raise ConfigError(f"reply refused: properties {extra} are not whitelisted")
    settings = resolve(ctxt)
    if settings.state_dir is not None:
        append_audit_entry(
            settings.state_dir,
            run=str(ctxt.run_id),
            server_round=0,  # before round 1
            message_type=str(MessageTypeLegacy.GET_PROPERTIES),
            arrays=[],
            metrics=properties,
            num_examples=0,
            epsilon=None,
        )
    return reply
