"""The hospital's side of client-level central DP: clip the update, weigh 1.

When a round's instructions carry Flower's ``clipping_norm`` (the
coordinator's client-side DP wrapper sends it) and hospfed's
``central-dp`` key, :func:`central_clipping` runs Flower's clipping mod on
the reply: ``fixedclipping_mod``, or ``adaptiveclipping_mod`` (which also
reports whether the update was clipped, Flower's ``norm_bit``), so the
update (weights minus the round's global weights) has L2 norm at most the
clipping norm. It then reports one example instead of the training-set
size: the coordinator's noise ``z C / n`` bounds only the plain mean of the
clipped updates, and under SecAgg+ the weight is applied by the hospital
inside the masked vector, where the coordinator cannot change it. It is
the innermost mod of the ClientApp, so the outgoing policy checks and
audits, and SecAgg+ masks, the clipped update. Other messages, and rounds
without central DP, pass through untouched.
"""

from __future__ import annotations

from flwr.app import Context, Message
from flwr.app.message_type import MessageType
from flwr.client.mod import adaptiveclipping_mod, fixedclipping_mod
from flwr.clientapp.typing import ClientAppCallable
from flwr.compat.common import recorddict_compat as compat
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

from hospfed.common.errors import ConfigError
from hospfed.common.protocol import Key

__all__ = ["central_clipping"]

_MODS = {"fixed": fixedclipping_mod, "adaptive": adaptiveclipping_mod}


def central_clipping(
    msg: Message, ctxt: Context, call_next: ClientAppCallable
) -> Message:
    """Clip a train reply's update and set its weight to 1 under central DP.

    Raises
    ------
    ConfigError
        If the instructions carry a clipping norm without a known mechanism
        (or the reverse): the hospital would send an update the
        coordinator's noise does not cover.

    """
    if msg.metadata.message_type != MessageType.TRAIN:
        return call_next(msg, ctxt)
    config = compat.recorddict_to_fitins(msg.content, keep_input=True).config
    mechanism = config.get(Key.CENTRAL_DP)
    if mechanism is None and KEY_CLIPPING_NORM not in config:
        return call_next(msg, ctxt)
    if mechanism not in _MODS or KEY_CLIPPING_NORM not in config:
        raise ConfigError(
            f"instructions ask for central DP {mechanism!r} with clipping norm "
            f"{config.get(KEY_CLIPPING_NORM)!r}; expected fixed or adaptive with a "
            "clipping norm"
        )
    reply = _MODS[str(mechanism)](msg, ctxt, call_next)
    if reply.has_error():
        return reply
    fitres = compat.recorddict_to_fitres(reply.content, keep_input=True)
    fitres.num_examples = 1
    reply.content = compat.fitres_to_recorddict(fitres, keep_input=True)
    return reply
