"""The coordinator's sums query: every hospital queried must answer."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Message
from flwr.common import Code, GetPropertiesRes, Status
from flwr.compat.common import recorddict_compat as compat

from hospfed.common.errors import RoundFailedError
from hospfed.common.scaling import InputSums
from hospfed.server.config import RunConfig
from hospfed.server.scaling_query import query_scaling
from tests.client.test_app import _federation_task

X = {
    "a": np.arange(26.0).reshape(13, 2) ** 1.5,
    "b": np.arange(30.0).reshape(15, 2) - 4,
}


@pytest.fixture(autouse=True)
def _identity(monkeypatch):
    """Messages need the run's identity, which a ServerApp process has set."""
    from flwr.supercore.task_identity import TaskIdentity

    monkeypatch.setattr(TaskIdentity, "_run_id", 1)
    monkeypatch.setattr(TaskIdentity, "_node_id", 0)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)


def _sums(x):
    return InputSums(len(x), tuple(x.sum(0)), tuple((x**2).sum(0))).to_json()


class FakeGrid:
    """Answers the query for each node with the given (name, sums) or nothing."""

    def __init__(self, answers):
        self.answers = answers

    def get_node_ids(self):
        return list(self.answers)

    def send_and_receive(self, messages, timeout=None):
        for message in messages:
            answer = self.answers[message.metadata.dst_node_id]
            if answer is None:
                continue  # timed out
            name, sums = answer
            res = GetPropertiesRes(
                Status(Code.OK, ""), {"hospital": name, "input-sums": sums}
            )
            yield Message(compat.getpropertiesres_to_recorddict(res), reply_to=message)


def _config():
    return RunConfig.from_mapping({"min-hospitals": 2}, task=_federation_task())


def test_the_answers_of_every_hospital_give_the_pooled_statistics():
    grid = FakeGrid({1: ("b", _sums(X["b"])), 2: ("a", _sums(X["a"]))})
    scaling, names = query_scaling(grid, _config(), wait_seconds=0)
    pooled = np.concatenate([X["a"], X["b"]])
    np.testing.assert_allclose(scaling.mean, pooled.mean(0), rtol=1e-12)
    np.testing.assert_allclose(scaling.std, pooled.std(0), rtol=1e-9)
    assert names == ["a", "b"]


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({1: ("a", _sums(X["a"])), 2: ("b", _sums(X["b"])), 3: None}, "did not answer"),
        ({1: ("a", _sums(X["a"])), 2: ("a", _sums(X["b"]))}, "two hospitals answered"),
        ({1: ("a", _sums(X["a"])), 2: ("b", '{"count": 1}')}, "b: malformed"),
    ],
)
def test_a_missing_duplicate_or_malformed_answer_fails_the_run(answers, message):
    with pytest.raises(RoundFailedError, match=message) as info:
        query_scaling(FakeGrid(answers), _config(), wait_seconds=0)
    assert "input sums for federation-wide standardisation" in str(info.value)
