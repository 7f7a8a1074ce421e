"""The hospital's side of central DP: the update leaves clipped, at weight 1."""

import numpy as np
import pytest
from flwr.app.message import Context, Message
from flwr.app.message_type import MessageType
from flwr.common import (
    Code,
    FitIns,
    FitRes,
    Status,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.compat.common import recorddict_compat as compat
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM, KEY_NORM_BIT

from hospfed.client.app import make_client_app
from hospfed.client.central_dp import central_clipping
from hospfed.common.errors import ConfigError
from hospfed.common.protocol import METRIC_WHITELIST, Key

OK = Status(code=Code.OK, message="")
GLOBAL = [np.full((13, 1), 0.5, np.float32), np.zeros(1, np.float32)]


@pytest.fixture(autouse=True)
def task_identity(monkeypatch):
    from flwr.supercore.task_identity import TaskIdentity

    for field, value in (("_task_id", 1), ("_run_id", 7), ("_node_id", 1)):
        monkeypatch.setattr(TaskIdentity, field, value)


def train_message(config):
    content = compat.fitins_to_recorddict(
        FitIns(ndarrays_to_parameters(GLOBAL), config), True
    )
    return Message(content, dst_node_id=1, message_type=MessageType.TRAIN)


def context():
    return Context(run_id=7, node_id=1, node_config={}, state=None, run_config={})


def answer(shift):
    """A hospital that moves every weight by ``shift`` and trained on 85 rows."""

    def call_next(msg, ctxt):
        arrays = [w + np.float32(shift) for w in GLOBAL]
        res = FitRes(OK, ndarrays_to_parameters(arrays), 85, {"hospital": "va"})
        return Message(compat.fitres_to_recorddict(res, False), reply_to=msg)

    return call_next


def sent(reply):
    res = compat.recorddict_to_fitres(reply.content, keep_input=True)
    update = [
        a - g
        for a, g in zip(parameters_to_ndarrays(res.parameters), GLOBAL, strict=True)
    ]
    return res, float(np.sqrt(sum(np.sum(u.astype(np.float64) ** 2) for u in update)))


@pytest.mark.parametrize("mechanism", ["fixed", "adaptive"])
def test_the_update_leaves_clipped_to_the_norm_with_weight_one(mechanism):
    config = {KEY_CLIPPING_NORM: 0.3, Key.CENTRAL_DP: mechanism}
    reply = central_clipping(train_message(config), context(), answer(1.0))
    res, norm = sent(reply)
    assert norm <= 0.3 * (1 + 1e-6)
    assert norm == pytest.approx(0.3, rel=1e-5)  # shrunk, not zeroed
    assert res.num_examples == 1
    if mechanism == "adaptive":
        assert res.metrics[KEY_NORM_BIT] is True
        assert KEY_NORM_BIT in METRIC_WHITELIST  # the outgoing policy lets it out


def test_an_update_within_the_norm_is_sent_unchanged():
    config = {KEY_CLIPPING_NORM: 5.0, Key.CENTRAL_DP: "fixed"}
    _, norm = sent(central_clipping(train_message(config), context(), answer(0.1)))
    assert norm == pytest.approx(0.1 * np.sqrt(14), rel=1e-5)


def test_without_central_dp_the_reply_passes_untouched():
    res, norm = sent(central_clipping(train_message({}), context(), answer(1.0)))
    assert (res.num_examples, norm) == (85, pytest.approx(np.sqrt(14), rel=1e-5))


def test_a_clipping_norm_without_a_mechanism_is_refused():
    with pytest.raises(ConfigError, match="central DP"):
        central_clipping(
            train_message({KEY_CLIPPING_NORM: 0.3}), context(), answer(1.0)
        )


def test_clipping_is_the_innermost_mod_after_secure_aggregation():
    mods = make_client_app()._mods
    names = [getattr(m, "__name__", "") for m in mods]
    assert names[0] == "secure_aggregation"
    assert mods[-1] is central_clipping
