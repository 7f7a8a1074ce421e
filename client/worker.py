"""The hospital's warm worker: the model and the decrypted data kept across messages.

Flower 1.42's SuperNode runs every message in a fresh ``flwr-clientapp``
process: a Keras hospital would import TensorFlow (3-5 s) and decrypt its
dataset again for every message. ``hospfed-client start`` therefore hosts a
:class:`Worker` in its own long-lived process, listening on a Unix socket
in a 0700 directory of the hospital's state directory, and tells the
ClientApp where it is (node config ``worker-socket``). The ClientApp, in
its per-message process, keeps everything that must see each reply (the
SecAgg+ mod, the outgoing policy and audit log, the clipping-range check)
and hands only the training or evaluation to the worker
(:class:`WorkerClient`). The worker runs the very same
:class:`~hospfed.client.app.HospitalClient` (privacy ledger included), so
a round trains identically with or without it. The decrypted dataset is
dropped after ``idle_seconds`` without a message.

The socket protocol is hospfed's own, on purpose small (no pickle): a
request or reply is a JSON header and the model's arrays as an ``.npz``
read with ``allow_pickle=False``, each length-prefixed
(:func:`send_frame` / :func:`recv_frame`). Only a process of the same user
may connect (``SO_PEERCRED``).
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.client import NumPyClient
from flwr.common import NDArrays, Scalar

from hospfed.common import errors
from hospfed.common.errors import ConfigError, HospfedError, raised_where

_PLAIN = (bool, int, float, str)
"""The instructions' values training reads (protocol keys); SecAgg+'s records
are for the mods in the ClientApp's process and stay there."""
LOG = logging.getLogger("hospfed.client.worker")
WORKER_SOCKET_KEY = "worker-socket"
"""The node-config key naming the worker's socket."""
MAX_FRAME = 1 << 30
_IO_TIMEOUT = 120.0
"""Seconds a peer may take to send its request or read the reply."""
_HEADER = struct.Struct("!IQ")
_ERRORS: dict[str, type[HospfedError]] = {
    name: cls
    for name, cls in vars(errors).items()
    if isinstance(cls, type) and issubclass(cls, HospfedError)
}
"""hospfed's errors by name: one raised in the worker is raised again as itself."""


def send_frame(sock: socket.socket, header: dict[str, Any], arrays: NDArrays) -> None:
    """Send a JSON header and arrays (``.npz``, no pickle), length-prefixed."""
    head = json.dumps(header).encode()
    buffer = io.BytesIO()
    np.savez(buffer, *arrays)
    body = buffer.getvalue()
    sock.sendall(_HEADER.pack(len(head), len(body)) + head + body)


def recv_frame(sock: socket.socket) -> tuple[dict[str, Any], NDArrays]:
    """Receive what :func:`send_frame` sent.

    Raises
    ------
    ConnectionError
        If the peer closed early or the frame is malformed or too large.

    """
    head_len, body_len = _HEADER.unpack(_recv_exactly(sock, _HEADER.size))
    if head_len > MAX_FRAME or body_len > MAX_FRAME:
        raise ConnectionError("worker frame too large")
    header = json.loads(_recv_exactly(sock, head_len))
    if not isinstance(header, dict):
        raise ConnectionError("worker frame header is not an object")
    with np.load(io.BytesIO(_recv_exactly(sock, body_len)), allow_pickle=False) as npz:
        arrays = [npz[f"arr_{i}"] for i in range(len(npz.files))]
    return header, arrays


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError("the worker connection closed mid-frame")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _error(kind: str, message: str) -> HospfedError:
    """The worker's error as its own class (a plain HospfedError if it cannot be)."""
    try:
        return _ERRORS.get(kind, HospfedError)(message)
    except TypeError:  # a class with structured arguments (RoundFailedError)
        return HospfedError(message)


class WorkerClient(NumPyClient):
    """The ClientApp's side: forwards fit, evaluate and sums queries to the worker.

    Parameters
    ----------
    path : Path
        The worker's socket.
    run : str
        The Flower run id.

    """

    def __init__(self, path: Path, run: str) -> None:
        self.path, self.run = path, run

    def _call(
        self, op: str, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[dict[str, Any], NDArrays]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            try:
                sock.connect(str(self.path))
            except OSError as exc:
                raise ConfigError(
                    f"the hospital's worker at {self.path} is not running "
                    f"({exc.strerror}): is `hospfed-client start` up?"
                ) from exc
            plain = {k: v for k, v in config.items() if isinstance(v, _PLAIN)}
            send_frame(sock, {"op": op, "run": self.run, "config": plain}, parameters)
            header, arrays = recv_frame(sock)
        if "error" in header:
            raise _error(str(header.get("type")), str(header["error"]))
        return header, arrays

    def fit(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[NDArrays, int, dict[str, Scalar]]:
        """Train in the worker."""
        header, arrays = self._call("fit", parameters, config)
        return arrays, int(header["num_examples"]), dict(header["metrics"])

    def get_properties(self, config: dict[str, Scalar]) -> dict[str, Scalar]:
        """Answer a sums query in the worker."""
        header, _ = self._call("properties", [], config)
        return dict(header["properties"])

    def evaluate(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[float, int, dict[str, Scalar]]:
        """Evaluate in the worker."""
        header, _ = self._call("evaluate", parameters, config)
        return (
            float(header["loss"]),
            int(header["num_examples"]),
            dict(header["metrics"]),
        )


class Worker:
    """The warm side: serves fit, evaluate and sums queries, one at a time.

    Parameters
    ----------
    settings : NodeSettings
        The hospital's settings (dataset, key, backend, DP, state directory).
    path : Path
        The socket; its directory is created 0700.
    idle_seconds : float
        Drop the decrypted dataset after this long without a message.

    """

    def __init__(self, settings: Any, path: Path, idle_seconds: float) -> None:
        self.settings, self.path, self.idle_seconds = settings, path, idle_seconds
        self._lock = threading.Lock()
        self._dataset: Any = None
        self._clients: dict[str, Any] = {}
        self._last = time.monotonic()
        self._closed = threading.Event()
        self._sock: socket.socket | None = None

    def start(self) -> None:
        """Listen (the socket 0600 in a 0700 directory) and serve in threads."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)
        self.path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o600)
        sock.listen(4)
        self._sock = sock
        threading.Thread(target=self._accept, daemon=True, name="worker").start()
        threading.Thread(target=self._evict, daemon=True, name="worker-idle").start()

    def stop(self) -> None:
        """Stop listening, remove the socket and drop the data."""
        self._closed.set()
        if self._sock is not None:
            self._sock.close()
        self.path.unlink(missing_ok=True)
        with self._lock:
            self._dataset, self._clients = None, {}

    def preload(self, dataset: Any) -> None:
        """Keep an already loaded dataset (``hospfed-client start`` checked it)."""
        with self._lock:
            self._dataset, self._last = dataset, time.monotonic()

    @property
    def loaded(self) -> bool:
        """Whether the decrypted dataset is in memory."""
        return self._dataset is not None

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            with conn:
                conn.settimeout(_IO_TIMEOUT)  # a silent peer cannot hold the worker
                if _peer_uid(conn) != os.getuid():
                    LOG.warning("worker: refused a connection from another user")
                    continue
                self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        try:
            header, arrays = recv_frame(conn)
        except (OSError, ValueError) as exc:  # closed, malformed, or timed out
            LOG.warning("worker: a malformed request (%s)", type(exc).__name__)
            return
        with self._lock:
            self._last = time.monotonic()
            try:
                reply, out = self._run(header, arrays)
            except HospfedError as exc:
                reply, out = {"error": str(exc), "type": type(exc).__name__}, []
            except Exception as exc:  # it may quote data: its type and place only
                LOG.error("worker: %s", raised_where(exc))
                reply, out = {"error": f"{raised_where(exc)} in the worker"}, []
            self._last = time.monotonic()
        try:
            send_frame(conn, reply, out)
        except OSError:
            LOG.warning("worker: the ClientApp went away before the reply")

    def _run(
        self, header: dict[str, Any], arrays: NDArrays
    ) -> tuple[dict[str, Any], NDArrays]:
        client = self._client(str(header.get("run", "")))
        config = dict(header.get("config") or {})
        if header.get("op") == "fit":
            weights, count, metrics = client.fit(arrays, config)
            return {"num_examples": count, "metrics": metrics}, list(weights)
        if header.get("op") == "evaluate":
            loss, count, metrics = client.evaluate(arrays, config)
            return {"loss": loss, "num_examples": count, "metrics": metrics}, []
        if header.get("op") == "properties":
            return {"properties": client.get_properties(config)}, []
        raise ConfigError(f"the worker does not do {header.get('op')!r}")

    def _client(self, run: str) -> Any:
        from hospfed.client.app import HospitalClient
        from hospfed.client.data import read_hospital_data

        if self._dataset is None:
            self._dataset = read_hospital_data(self.settings)
            LOG.info("worker: dataset loaded")
        if run not in self._clients:
            self._clients = {run: HospitalClient(self._dataset, self.settings, run)}
        return self._clients[run]

    def _evict(self) -> None:
        while not self._closed.wait(min(30.0, self.idle_seconds / 4)):
            with self._lock:
                idle = time.monotonic() - self._last
                if self._dataset is not None and idle > self.idle_seconds:
                    self._dataset, self._clients = None, {}
                    LOG.info(
                        "worker: decrypted dataset dropped after %.0f s idle", idle
                    )


def _peer_uid(conn: socket.socket) -> int:
    """The user id of the process at the other end (Linux ``SO_PEERCRED``)."""
    creds = conn.getsockopt(
        socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
    )
    return int(struct.unpack("3i", creds)[1])
