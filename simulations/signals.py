"""Ctrl-C and SIGTERM in ``hospfed-sim``: stop after the round, or at once.

The first SIGINT or SIGTERM only records a
:class:`~hospfed.server.stop.StopRequest`: the run stops before its next
round, after the last completed one was checkpointed, writes its results
marked ``interrupted``, shuts Ray down, removes its workspace and exits
with 130 (SIGINT) or 143 (SIGTERM). A second signal calls ``at_once``,
which cleans up what must not stay (Ray's processes, the workspace with
its keys) and ends the process without unwinding: no traceback, no wait
for a round that may never finish.

Python runs signal handlers in the main thread only, between bytecodes;
the main thread of a simulation waits in Flower's runtime, which is
interruptible, so the handler runs at once.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

from hospfed.server.stop import StopRequest

__all__ = ["SIGNALS", "SignalStop", "signal_name"]

SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)


def signal_name(signum: int) -> str:
    """``SIGINT``, ``SIGTERM``, ... for a signal number."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class SignalStop:
    """Handle SIGINT and SIGTERM while the block runs (main thread only).

    Parameters
    ----------
    stop : StopRequest
        Set by the first signal (reason ``SIGINT`` or ``SIGTERM``, exit code
        128 + the signal number).
    at_once : callable
        Called with the signal number on a second signal; it must end the
        process (``os._exit``).

    """

    def __init__(self, stop: StopRequest, at_once: Callable[[int], Any]) -> None:
        self.stop = stop
        self.at_once = at_once
        self._previous: dict[signal.Signals, Any] = {}

    def install(self) -> None:
        """Install the handlers (again: Ray's ``init`` replaces SIGTERM's)."""
        for sig in SIGNALS:
            previous = signal.signal(sig, self._handle)
            if previous != self._handle:
                self._previous.setdefault(sig, previous)

    def restore(self) -> None:
        """Put the handlers back as they were before :meth:`install`."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.stop.request(signal_name(signum), 128 + signum):
            self.at_once(signum)

    def __enter__(self) -> SignalStop:
        self.install()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.restore()
