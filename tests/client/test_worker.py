"""The warm worker: the same training through its socket as in process, errors
that keep their kind, a socket only its owner can reach, and the decrypted
data dropped when idle."""

from __future__ import annotations

import socket
import stat
import struct
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hospfed.client.app import HospitalClient
from hospfed.client.data import HospitalDataset, NodeSettings
from hospfed.client.worker import Worker, WorkerClient, recv_frame, send_frame
from hospfed.common.datasets import FED_HEART_TASK
from hospfed.common.datasets.heart import clinical_table
from hospfed.common.datasets.heart_schema import FED_HEART_SCHEMA
from hospfed.common.errors import ConfigError, SchemaError
from hospfed.common.model import ModelSpec, initial_weights
from hospfed.common.protocol import encode_instructions
from hospfed.common.schema import DatasetSchema
from hospfed.common.training import TrainPlan

SPEC = ModelSpec(13)


def _settings() -> NodeSettings:
    return NodeSettings(
        hospital="switzerland",
        data=Path("site.hfd"),
        key_file=Path("site.key"),
        backend="torch",
        input_sums=True,  # lets the sums query through (refused by default)
    )


def _dataset() -> HospitalDataset:
    return HospitalDataset(
        clinical_table("switzerland"), FED_HEART_SCHEMA, "switzerland"
    )


def _config(server_round: int = 1, schema: DatasetSchema = FED_HEART_SCHEMA) -> dict:
    plan = TrainPlan(learning_rate=0.01, local_steps=20, batch_size=4)
    return encode_instructions(plan, SPEC, server_round, schema, task=FED_HEART_TASK)


@pytest.fixture
def worker(tmp_path):
    running = Worker(_settings(), tmp_path / "w" / "sock", idle_seconds=600)
    running.preload(_dataset())
    running.start()
    yield running
    running.stop()


def test_a_round_through_the_worker_equals_the_round_in_process(worker):
    start = initial_weights(SPEC, 0)
    remote = WorkerClient(worker.path, "run-1")
    local = HospitalClient(_dataset(), _settings(), "run-1")
    got, n, metrics = remote.fit(start, _config(2))
    want, n_local, metrics_local = local.fit(start, _config(2))
    assert n == n_local == 30
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert metrics == metrics_local
    loss, count, scores = remote.evaluate(start, _config())
    assert (loss, count, scores) == local.evaluate(start, _config())


def test_a_sums_query_through_the_worker_equals_the_query_in_process(worker):
    config = _config(1)
    remote = WorkerClient(worker.path, "run-1").get_properties(config)
    local = HospitalClient(_dataset(), _settings(), "run-1").get_properties(config)
    assert remote == local and set(remote) == {"hospital", "input-sums"}


def test_an_error_in_the_worker_keeps_its_kind_and_message(worker):
    other = replace(FED_HEART_SCHEMA, version=FED_HEART_SCHEMA.version + 1)
    with pytest.raises(SchemaError) as remote:
        WorkerClient(worker.path, "run-1").fit(
            initial_weights(SPEC, 0), _config(1, other)
        )
    with pytest.raises(SchemaError) as local:
        HospitalClient(_dataset(), _settings(), "run-1").fit(
            initial_weights(SPEC, 0), _config(1, other)
        )
    assert str(remote.value) == str(local.value)


def test_the_socket_is_private(worker):
    assert stat.S_IMODE(worker.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(worker.path.parent.stat().st_mode) == 0o700


def test_a_malformed_request_does_not_stop_the_worker(worker):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(worker.path))
        sock.sendall(struct.pack("!IQ", 5, 0) + b"nope!")
    with socket.socket(socket.AF_UNIX) as sock:  # a pickle is never loaded
        sock.connect(str(worker.path))
        sock.sendall(struct.pack("!IQ", 2, 6) + b"{}" + b"\x80\x04K\x01.")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(worker.path))
        send_frame(sock, {"op": "nothing", "run": "r"}, [])
        header, _ = recv_frame(sock)
    assert header["type"] == "ConfigError"
    WorkerClient(worker.path, "run-1").evaluate(initial_weights(SPEC, 0), _config())


def test_the_decrypted_data_is_dropped_when_idle_and_reloaded_when_needed(tmp_path):
    loads = []

    class Counting(Worker):
        def _client(self, run):
            if self._dataset is None:
                loads.append(run)
                self._dataset = _dataset()
            return super()._client(run)

    idle = Counting(_settings(), tmp_path / "sock", idle_seconds=0.4)
    idle.start()
    try:
        client = WorkerClient(idle.path, "run-1")
        client.evaluate(initial_weights(SPEC, 0), _config())
        assert idle.loaded and loads == ["run-1"]
        deadline = time.monotonic() + 10
        while idle.loaded and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not idle.loaded
        client.evaluate(initial_weights(SPEC, 0), _config())
        assert loads == ["run-1", "run-1"]
    finally:
        idle.stop()
    assert not idle.path.exists()


def test_no_worker_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="hospfed-client start"):
        WorkerClient(tmp_path / "none", "r").evaluate(
            initial_weights(SPEC, 0), _config()
        )


def test_an_idle_worker_keeps_no_reference_to_the_decrypted_data(tmp_path):
    import gc
    import weakref

    dataset = _dataset()
    alive = weakref.ref(dataset)
    idle = Worker(_settings(), tmp_path / "sock", idle_seconds=0.4)
    idle.preload(dataset)
    idle.start()
    try:
        WorkerClient(idle.path, "run-1").evaluate(initial_weights(SPEC, 0), _config())
        del dataset
        deadline = time.monotonic() + 10
        while idle.loaded and time.monotonic() < deadline:
            time.sleep(0.05)
        gc.collect()
        assert alive() is None  # nothing (no cache either) holds it any more
    finally:
        idle.stop()


def test_a_silent_peer_does_not_hold_the_worker(worker, monkeypatch):
    import hospfed.client.worker as module

    monkeypatch.setattr(module, "_IO_TIMEOUT", 0.5)
    with socket.socket(socket.AF_UNIX) as silent:
        silent.connect(str(worker.path))
        time.sleep(1.5)  # says nothing: the worker gives up on it
        loss, count, _ = WorkerClient(worker.path, "run-1").evaluate(
            initial_weights(SPEC, 0), _config()
        )
    assert count == 16 and loss > 0
