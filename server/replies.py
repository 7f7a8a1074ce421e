"""Which node sent which error: what Flower's legacy workflow forgets.

Flower's ``DefaultWorkflow`` hands a strategy each failed reply as
``Exception(message.error)``, without the node that sent it, so a round's
log could say *that* a hospital declined but not *which*. :class:`ReplyLog`
wraps the grid the workflow talks through and remembers, for every error
reply, the node it came from; :class:`~hospfed.server.strategy.RoundGuard`
asks it. The wrapper only observes: every call is passed through unchanged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from flwr.app import Message, RecordDict
from flwr.common import EvaluateRes, FitRes
from flwr.proto.node_pb2 import NodeInfo
from flwr.server.client_proxy import ClientProxy
from flwr.serverapp import Grid
from flwr.supercore.run import Run

__all__ = ["ReplyLog", "describe_failures", "failure_reason", "short_reason"]

Failures = list[tuple[ClientProxy, FitRes] | BaseException]
EvalFailures = list[tuple[ClientProxy, EvaluateRes] | BaseException]


_FIRST_POLL = 0.005  # seconds before the first pull for replies
_MAX_POLL = 0.5  # the longest wait between pulls (a deployment's grid)


class ReplyLog(Grid):
    """A pass-through grid that remembers the sender of each error reply.

    Parameters
    ----------
    grid : Grid
        The grid Flower gave the ServerApp.

    """

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self._lock = threading.Lock()
        self._errors: dict[int, tuple[object, int]] = {}

    def node_of(self, failure: BaseException) -> int | None:
        """The node that sent the error wrapped in ``failure``, if known.

        Parameters
        ----------
        failure : BaseException
            A failure as Flower's workflow passes it: ``Exception(error)``.

        Returns
        -------
        int or None
            The sending node's id; None for a failure not from a reply.

        """
        error = failure.args[0] if failure.args else None
        with self._lock:
            entry = self._errors.get(id(error))
        return entry[1] if entry is not None and entry[0] is error else None

    def _remember(self, replies: Iterable[Message], *, reset: bool) -> list[Message]:
        replies = list(replies)
        errors = {
            id(msg.error): (msg.error, msg.metadata.src_node_id)
            for msg in replies
            if msg.has_error()
        }
        with self._lock:
            if reset:  # a strategy only ever asks about the last exchange
                self._errors = {}
            self._errors |= errors
        return replies

    # --- Grid, passed through ------------------------------------------------

    def set_run(self, run: Run) -> None:  # noqa: D102
        self.grid.set_run(run)

    @property
    def run(self) -> Run:  # noqa: D102
        return self.grid.run

    def create_message(  # noqa: D102
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return self.grid.create_message(
            content, message_type, dst_node_id, group_id, ttl
        )

    def get_node_ids(self) -> Iterable[int]:  # noqa: D102
        return self.grid.get_node_ids()

    def get_nodes(self) -> Iterable[NodeInfo]:  # noqa: D102
        return self.grid.get_nodes()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:  # noqa: D102
        return self.grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:  # noqa: D102
        return self._remember(self.grid.pull_messages(message_ids), reset=False)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Push ``messages``; pull replies until all are in or ``timeout`` passes.

        Flower's grids do this with a fixed sleep between pulls: 0.1 s in
        simulation and 3 s in a deployment, so every message exchange (five
        per round with SecAgg+: its four stages and the evaluation) waits on
        average half that for nothing. This polls again after 5 ms, backing
        off by 1.5x to the grid's own interval in simulation or 0.5 s in a
        deployment (one HTTP pull to the SuperLink per poll), with Flower's
        semantics otherwise: no timeout waits for every reply.
        """
        pending = set(self.grid.push_messages(messages))
        deadline = None if timeout is None else time.monotonic() + timeout
        cap = float(getattr(self.grid, "pull_interval", _MAX_POLL))
        delay, replies = _FIRST_POLL, []
        while pending:
            pulled = list(self.grid.pull_messages(pending))
            replies.extend(pulled)
            pending.difference_update(m.metadata.reply_to_message_id for m in pulled)
            left = None if deadline is None else deadline - time.monotonic()
            if not pending or (left is not None and left <= 0):
                break
            time.sleep(delay if left is None else min(delay, left))
            delay = min(delay * 1.5, cap)
        return self._remember(replies, reset=True)


def describe_failures(failures: Failures | EvalFailures) -> list[str]:
    """Describe each failure in one short line, without tracebacks.

    Parameters
    ----------
    failures : list
        Flower's failures: ``(proxy, result)`` with a non-OK status, or an
        exception wrapping Flower's ``Error``.

    Returns
    -------
    list of str
        The client's own message for each failure.

    """
    lines = []
    for failure in failures:
        if isinstance(failure, BaseException):
            lines.append(failure_reason(failure))
        else:
            proxy, res = failure
            lines.append(f"node {proxy.node_id}: {short_reason(res.status.message)}")
    return lines


def failure_reason(failure: BaseException) -> str:
    """The client's own message out of a failure Flower wrapped."""
    # Flower wraps a client's error as Exception(Error(code, reason)).
    error = failure.args[0] if failure.args else None
    reason = str(getattr(error, "reason", failure))
    return short_reason(reason) or type(failure).__name__


def short_reason(text: str, limit: int = 300) -> str:
    """The client's own message out of Flower's error text (no traceback)."""
    marker = "Message: "
    if marker in text:
        text = text[text.rindex(marker) + len(marker) :]
        text = text.splitlines()[0].rstrip("'>")
    else:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        text = lines[-1] if lines else ""
    return text[:limit]
