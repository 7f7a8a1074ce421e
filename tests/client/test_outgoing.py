"""Every reply passes one policy: the model's arrays, whitelisted metrics, audited."""

import json
from pathlib import Path

import numpy as np
import pytest
from flwr.app.message import Context, Message
from flwr.app.message_type import MessageType
from flwr.common import (
    Code,
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Status,
    ndarrays_to_parameters,
)
from flwr.compat.common import recorddict_compat as compat

from hospfed.client.audit import verify_audit_log
from hospfed.client.data import NodeSettings
from hospfed.client.outgoing import make_outgoing_policy
from hospfed.common.datasets import FED_HEART_TASK
from hospfed.common.datasets.heart_schema import FED_HEART_SCHEMA
from hospfed.common.errors import ConfigError
from hospfed.common.model import ModelSpec, initial_weights
from hospfed.common.protocol import encode_instructions
from hospfed.common.training import TrainPlan

SPEC = ModelSpec(13)
OK = Status(code=Code.OK, message="")


@pytest.fixture(autouse=True)
def task_identity(monkeypatch):
    # Flower stamps messages with the identity of the task running them.
    from flwr.supercore.task_identity import TaskIdentity

    for field, value in (("_task_id", 1), ("_run_id", 7), ("_node_id", 1)):
        monkeypatch.setattr(TaskIdentity, field, value)


def instructions(server_round=2):
    plan = TrainPlan(learning_rate=0.1, local_steps=1, batch_size=4)
    return encode_instructions(
        plan, SPEC, server_round, FED_HEART_SCHEMA, task=FED_HEART_TASK
    )


def train_message():
    params = ndarrays_to_parameters(initial_weights(SPEC, 0))
    content = compat.fitins_to_recorddict(FitIns(params, instructions()), True)
    return Message(content, dst_node_id=1, message_type=MessageType.TRAIN)


def fit_reply(msg, arrays, metrics):
    res = FitRes(OK, ndarrays_to_parameters(arrays), 85, metrics)
    return Message(compat.fitres_to_recorddict(res, False), reply_to=msg)


def context():
    return Context(run_id=7, node_id=1, node_config={}, state=None, run_config={})


def policy(tmp_path):
    settings = NodeSettings(
        hospital="va", data=Path("x.hfd"), key_file=Path("x.key"), state_dir=tmp_path
    )
    return make_outgoing_policy(lambda _: settings)


def test_a_model_update_with_whitelisted_metrics_leaves_and_is_audited(tmp_path):
    msg = train_message()
    weights = initial_weights(SPEC, 1)
    metrics = {"hospital": "va", "epsilon-spent": 0.25}
    reply = policy(tmp_path)(
        msg, context(), lambda m, c: fit_reply(m, weights, metrics)
    )
    assert not reply.has_error()
    assert verify_audit_log(tmp_path) == []
    entry = (tmp_path / "audit.jsonl").read_text()
    assert (
        '"round": 2' in entry and '"epsilon": 0.25' in entry and '"run": "7"' in entry
    )


@pytest.mark.parametrize(
    ("arrays", "metrics", "message"),
    [
        (None, {"hospital": "va", "rows": 85}, "not whitelisted"),
        ([np.ones((13, 1), np.float32)], {"hospital": "va"}, "not the model's"),
        ([np.ones((5, 2), np.float32)] * 2, {"hospital": "va"}, "not the model's"),
        (
            [w.astype(np.float64) for w in initial_weights(SPEC, 1)],
            {"hospital": "va"},
            "float32",
        ),
    ],
)
def test_anything_else_is_refused_and_not_audited(tmp_path, arrays, metrics, message):
    msg = train_message()
    arrays = initial_weights(SPEC, 1) if arrays is None else arrays
    with pytest.raises(ConfigError, match=message):
        policy(tmp_path)(msg, context(), lambda m, c: fit_reply(m, arrays, metrics))
    assert not (tmp_path / "audit.jsonl").exists()


def test_evaluation_replies_carry_metrics_only_and_other_types_are_refused(tmp_path):
    params = ndarrays_to_parameters(initial_weights(SPEC, 0))
    content = compat.evaluateins_to_recorddict(
        EvaluateIns(params, instructions()), True
    )
    msg = Message(content, dst_node_id=1, message_type=MessageType.EVALUATE)
    res = EvaluateRes(OK, 0.5, 40, {"hospital": "va", "accuracy": 0.7, "auc": 0.8})
    reply = policy(tmp_path)(
        msg,
        context(),
        lambda m, c: Message(compat.evaluateres_to_recorddict(res), reply_to=m),
    )
    assert not reply.has_error() and verify_audit_log(tmp_path) == []
    query = Message(content, dst_node_id=1, message_type=MessageType.QUERY)
    with pytest.raises(ConfigError, match="answers train, evaluate and sums queries"):
        policy(tmp_path)(query, context(), lambda m, c: m)


def test_a_sums_answer_leaves_with_whitelisted_properties_only_and_is_audited(
    tmp_path,
):
    from flwr.common import GetPropertiesIns, GetPropertiesRes
    from flwr.common.constant import MessageTypeLegacy

    content = compat.getpropertiesins_to_recorddict(GetPropertiesIns(instructions()))
    msg = Message(content, dst_node_id=1, message_type=MessageTypeLegacy.GET_PROPERTIES)

    def answer(properties):
        res = GetPropertiesRes(OK, properties)
        return lambda m, c: Message(
            compat.getpropertiesres_to_recorddict(res), reply_to=m
        )

    sums = '{"count":2,"sums":[1.0],"squares":[1.0]}'
    reply = policy(tmp_path)(
        msg, context(), answer({"hospital": "va", "input-sums": sums})
    )
    assert not reply.has_error()
    [entry] = [
        json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()
    ]
    assert entry["type"] == "get_properties" and entry["metrics"]["input-sums"] == sums
    with pytest.raises(
        ConfigError, match=r"properties \['row-17'\] are not whitelisted"
    ):
        policy(tmp_path)(msg, context(), answer({"hospital": "va", "row-17": 3.0}))


def test_a_hospital_that_cannot_open_its_data_is_named_in_the_error(tmp_path):
    from hospfed.client.app import make_client_app
    from hospfed.common.errors import DataError

    key = tmp_path / "site.key"
    from hospfed.client.vault import generate_key_file

    generate_key_file(key)
    settings = NodeSettings(
        hospital="va", data=tmp_path / "missing.hfd", key_file=key, state_dir=tmp_path
    )
    app = make_client_app(lambda _: settings)
    with pytest.raises(DataError, match=r"^va: ") as info:
        app(train_message(), context())
    assert "missing.hfd" in str(info.value)
