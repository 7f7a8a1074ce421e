"""SecAgg+ in process: Flower's own workflow and mod, our ClientApp mods.

A grid that hands each message to an in-process ClientApp (with hospfed's
``secure_aggregation`` and ``clipping_range_check`` mods around a client that
returns a fixed update) runs Flower's SecAgg+ protocol end to end, fast. It
shows: what the coordinator receives from one hospital is independent of
that hospital's update; the aggregate is the example-weighted mean within
the quantisation bound; an update SecAgg+ would clip is refused, not
clipped; and a halted round is a failed round.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import numpy as np
import pytest
from flwr.app import ConfigRecord, Context, Error, Message, RecordDict
from flwr.client import ClientApp, NumPyClient
from flwr.common import bytes_to_ndarray, ndarrays_to_parameters
from flwr.common.secure_aggregation.secaggplus_constants import (
    RECORD_KEY_CONFIGS,
    Key,
)
from flwr.compat.common import recorddict_compat as compat
from flwr.server import LegacyContext, ServerConfig
from flwr.server.client_manager import SimpleClientManager
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.strategy import FedAvg
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.supercore.task_identity import TaskIdentity

from hospfed.client.app import clipping_range_check, secure_aggregation
from hospfed.common.errors import RoundFailedError
from hospfed.server.history import RunHistory
from hospfed.server.secagg import GuardedSecAggPlusWorkflow, SecAggSettings
from hospfed.server.strategy import RoundGuard

SIZE = 20_000
# parameters: enough for a tight correlation estimate


@pytest.fixture(autouse=True)
def task_identity():
    """Flower's messages take their run id from the process's task identity."""
    saved = (TaskIdentity._run_id, TaskIdentity._task_id, TaskIdentity._node_id)
    TaskIdentity.run_id = 1
    TaskIdentity.task_id = 0
    TaskIdentity.node_id = 0
    yield
    TaskIdentity._run_id, TaskIdentity._task_id, TaskIdentity._node_id = saved


class FixedUpdate(NumPyClient):
    def __init__(self, update: list[np.ndarray], n: int) -> None:
        self.update, self.n = update, n

    def fit(self, parameters, config):  # type: ignore[no-untyped-def]
        return self.update, self.n, {}


class InProcessGrid:
    """Delivers each message to the destination node's ClientApp at once."""

    def __init__(self, apps: dict[int, ClientApp]) -> None:
        self.apps = apps
        self.contexts = {
            nid: Context(
                run_id=1, node_id=nid, node_config={}, state=RecordDict(), run_config={}
            )
            for nid in apps
        }
        self.captured: dict[int, list[np.ndarray]] = {}

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> list[Message]:
        replies = []
        for sent in messages:
            msg = copy.deepcopy(sent)  # as if serialised: no shared records
            msg.metadata.__dict__["_message_id"] = f"m{id(msg)}"  # as the SuperLink
            nid = msg.metadata.dst_node_id
            try:
                reply = self.apps[nid](msg, self.contexts[nid])
            except Exception as exc:  # as Flower's runtime: an error reply
                reply = Message(Error(code=0, reason=str(exc)), reply_to=msg)
            if not reply.has_error():
                configs = reply.content.config_records.get(RECORD_KEY_CONFIGS, {})
                if Key.MASKED_PARAMETERS in configs:  # what the server receives
                    self.captured[nid] = [
                        bytes_to_ndarray(b) for b in configs[Key.MASKED_PARAMETERS]
                    ]
            replies.append(reply)
        return replies


def _client_fn(client: NumPyClient):  # type: ignore[no-untyped-def]
    def client_fn(context: Context):  # type: ignore[no-untyped-def]
        return client.to_client()

    return client_fn


def run_secagg(updates, counts, settings, *, min_results=None):
    apps = {}
    for i, (update, n) in enumerate(zip(updates, counts, strict=True)):
        apps[100 + i] = ClientApp(
            client_fn=_client_fn(FixedUpdate(update, n)),
            mods=[secure_aggregation, clipping_range_check],
        )
    grid = InProcessGrid(apps)
    manager = SimpleClientManager()
    for nid in apps:
        manager.register(GridClientProxy(nid, grid, 1))  # type: ignore[arg-type]
    start = [np.zeros_like(u) for u in updates[0]]
    fedavg = FedAvg(
        fraction_fit=1.0,
        min_fit_clients=len(apps),
        min_available_clients=len(apps),
        initial_parameters=ndarrays_to_parameters(start),
    )
    history = RunHistory()
    guard = RoundGuard(
        fedavg,
        min_results=min_results or len(apps),
        num_rounds=1,
        history=history,
    )
    context = LegacyContext(
        context=Context(
            run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={}
        ),
        config=ServerConfig(num_rounds=1),
        strategy=guard,
        client_manager=manager,
    )
    context.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord(
        {WorkflowKey.CURRENT_ROUND: 1}
    )
    context.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(
        ndarrays_to_parameters(start), True
    )
    GuardedSecAggPlusWorkflow(settings)(grid, context)  # type: ignore[arg-type]
    aggregate = compat.arrayrecord_to_parameters(
        context.state.array_records[MAIN_PARAMS_RECORD], keep_input=True
    )
    from flwr.common import parameters_to_ndarrays

    return grid, parameters_to_ndarrays(aggregate), history


def test_the_coordinator_sees_masked_noise_yet_the_aggregate_is_the_weighted_mean():
    rng = np.random.default_rng(0)
    counts = [199, 172, 30, 85]  # the Heart hospitals' training sets
    updates = [[rng.normal(0, 0.5, SIZE).astype(np.float32)] for _ in counts]
    settings = SecAggSettings(timeout=None)
    grid, aggregate, history = run_secagg(updates, counts, settings)

    seen = grid.captured[100]  # [weight factor, masked values] from Cleveland
    received = seen[1].astype(np.float64)
    true = updates[0][0].astype(np.float64)
    corr = np.corrcoef(received, true)[0, 1]
    # Independent: |corr| of n independent pairs is ~ N(0, 1/n); 5 sigma.
    assert abs(corr) < 5 / np.sqrt(SIZE)
    # Masks are uniform over [0, 2**32): the received values look uniform too.
    assert abs(received.mean() / 2**32 - 0.5) < 0.01
    # Not even the example count is readable from the masked vector.
    assert int(seen[0][0]) != round(
        199 / settings.max_weight * settings.quantization_range
    )

    plain = sum(
        n * u[0].astype(np.float64) for n, u in zip(counts, updates, strict=True)
    ) / sum(counts)
    bound = settings.quantisation_bound([float(n) for n in counts])
    assert bound < 1e-4
    assert np.max(np.abs(aggregate[0] - plain)) <= bound + 1e-6  # float32 cast
    assert history.rounds[0].skipped is None


def test_an_update_secagg_would_clip_is_refused_at_the_hospital_not_clipped():
    counts = [900, 900, 900, 900]
    ok = [np.full(100, 0.5, np.float32)]
    big = [np.full(100, 0.5, np.float32)]
    big[0][7] = 9.5  # 9.5 * 0.9 > 8: SecAgg+ would clip it to 8 silently
    settings = SecAggSettings(timeout=None)
    with pytest.raises(RoundFailedError) as info:
        run_secagg([big, ok, ok, ok], counts, settings, min_results=4)
    message = str(info.value)
    assert "update refused before secure aggregation: 1 values" in message
    assert "clipping range +-8" in message
    assert "9.5" not in message  # the value itself is not revealed


def test_a_round_that_loses_too_many_hospitals_fails_naming_the_stage():
    counts = [100, 100, 100, 100]
    ok = [np.zeros(10, np.float32)]
    bad = [np.full(10, np.nan, np.float32)]
    settings = SecAggSettings(timeout=None)
    with pytest.raises(RoundFailedError) as info:
        run_secagg([bad, bad, ok, ok], counts, settings, min_results=3)
    message = str(info.value)
    assert "round 1 (train) failed" in message
    assert "secure aggregation halted at collect masked vectors" in message
    assert "below the reconstruction threshold: 2 of 4" in message
    assert info.value.exit_code == 3


def test_a_halted_round_within_the_minimum_is_skipped_and_says_so():
    counts = [100, 100, 100, 100]
    ok = [np.ones(10, np.float32)]
    bad = [np.full(10, np.nan, np.float32)]
    settings = SecAggSettings(timeout=None)
    _, aggregate, history = run_secagg(
        [bad, bad, ok, ok], counts, settings, min_results=2
    )
    record = history.rounds[0]
    assert record.skipped is not None
    assert (
        "halted at collect masked vectors: below the reconstruction" in record.skipped
    )
    assert np.all(aggregate[0] == 0)  # the weights before the round
    assert len(record.declined) == 2


def test_one_hospital_dropping_out_leaves_the_mean_of_the_others():
    counts = [100, 50, 50, 100]
    updates = [[np.full(10, v, np.float32)] for v in (1.0, 2.0, 3.0, 0.5)]
    updates[3] = [np.full(10, np.inf, np.float32)]  # refused at the hospital
    settings = SecAggSettings(timeout=None)
    _, aggregate, history = run_secagg(updates, counts, settings, min_results=3)
    expected = (100 * 1.0 + 50 * 2.0 + 50 * 3.0) / 200
    assert np.allclose(aggregate[0], expected, atol=1e-4)
    declined = history.rounds[0].declined
    assert len(declined) == 1 and "update refused" in declined[0].reason


def test_seven_hospitals_with_the_default_four_shares_aggregate():
    # Flower 1.42 alone announces 4 shares, then makes them 5: with more than
    # 5 hospitals every one failed its share-keys stage (IndexError).
    rng = np.random.default_rng(3)
    counts = [30, 40, 50, 60, 70, 80, 90]
    updates = [[rng.normal(0, 0.5, 500).astype(np.float32)] for _ in counts]
    settings = SecAggSettings(num_shares=4, reconstruction_threshold=3, timeout=None)
    _, aggregate, history = run_secagg(updates, counts, settings)
    plain = sum(
        n * u[0].astype(np.float64) for n, u in zip(counts, updates, strict=True)
    ) / sum(counts)
    bound = settings.quantisation_bound([float(n) for n in counts])
    assert np.max(np.abs(aggregate[0] - plain)) <= bound + 1e-6
    assert history.rounds[0].skipped is None
