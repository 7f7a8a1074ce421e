"""Stopping a run between rounds, on request (e.g. Ctrl-C or SIGTERM).

Whoever owns the process (``hospfed-sim``'s signal handlers, later the
deployed server daemon) calls :meth:`StopRequest.request`; the round guard
checks it before each round starts and ends the run with
:class:`RunInterruptedError`, after the last completed round was checkpointed.
"""

from __future__ import annotations

import threading

from hospfed.common.errors import HospfedError

__all__ = ["EXIT_INTERRUPTED", "RunInterruptedError", "StopRequest"]

EXIT_INTERRUPTED = 130
"""Exit code of a run stopped by request (128 + SIGINT, the shell's code)."""


class StopRequest:
    """A thread-safe request to stop after the current round.

    Attributes
    ----------
    reason : str or None
        What asked for the stop (e.g. ``"SIGINT"``).
    exit_code : int
        The process's exit code once stopped.

    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self.reason: str | None = None
        self.exit_code = EXIT_INTERRUPTED

    def request(self, reason: str, exit_code: int = EXIT_INTERRUPTED) -> bool:
        """Ask the run to stop; return False if it had been asked already.

        Parameters
        ----------
        reason : str
            Why (e.g. ``"SIGTERM"``); recorded in the results.
        exit_code : int
            The process's exit code once stopped (130 for SIGINT, 143 for
            SIGTERM).

        """
        with self._lock:
            if self._event.is_set():
                return False
            self.reason, self.exit_code = reason, exit_code
            self._event.set()
            return True

    def is_set(self) -> bool:
        """Whether a stop was requested."""
        return self._event.is_set()


class RunInterruptedError(HospfedError):
    """The run stopped on request; rounds up to ``completed_rounds`` are kept.

    Parameters
    ----------
    completed_rounds : int
        The last round that completed (0: none).
    num_rounds : int
        Rounds the run was planned to have.
    reason : str
        What asked it to stop.
    exit_code : int
        The process's exit code.

    """

    def __init__(
        self,
        *,
        completed_rounds: int,
        num_rounds: int,
        reason: str,
        exit_code: int = EXIT_INTERRUPTED,
    ) -> None:
        self.completed_rounds = completed_rounds
        self.num_rounds = num_rounds
        self.reason = reason
        self.exit_code = exit_code
        super().__init__(
            f"interrupted ({reason}) after round {completed_rounds} of {num_rounds}"
        )
