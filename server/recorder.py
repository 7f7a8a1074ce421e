"""Writing a run's results directory as the run goes, so nothing learned is lost.

After every completed round :class:`RunRecorder` writes the checkpoint
(:mod:`hospfed.server.checkpoint`) and then ``metrics.json`` and
``model.npz`` with status ``running``; when the run ends, for whatever
reason, it writes the final results (``curves.png`` too) with status
``complete``, ``interrupted`` or ``failed`` and the reason, and marks the
checkpoint the same way. A run killed outright (SIGKILL, power loss) leaves
the last round's checkpoint and results, still saying ``running``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from flwr.server.strategy import Strategy

from hospfed.common.model import Weights
from hospfed.server.checkpoint import (
    CHECKPOINT_FILE,
    Checkpoint,
    config_hash,
    save_checkpoint,
    strategy_state,
)
from hospfed.server.config import RunConfig
from hospfed.server.history import RoundRecord, RunHistory
from hospfed.server.results import (
    describe_run,
    privacy_summary,
    versions,
    write_results,
)

__all__ = ["RunRecorder"]


class RunRecorder:
    """Checkpoint and results of one run, kept current round by round.

    Parameters
    ----------
    config : RunConfig
        The run; ``config.out_dir`` must be set.
    identity : dict
        Every setting that decides what the run computes
        (:func:`~hospfed.server.checkpoint.run_identity`).
    settings : Mapping
        The caller's own settings, recorded in ``metrics.json`` (e.g. the
        simulation's backend per hospital and privacy targets).
    history : RunHistory
        The run's history (shared with the round guard).
    strategy : Strategy
        The Flower strategy, whose optimiser state is checkpointed.
    resume : Checkpoint, optional
        The checkpoint this run continues.

    """

    def __init__(
        self,
        config: RunConfig,
        *,
        identity: dict[str, Any],
        settings: Mapping[str, Any],
        history: RunHistory,
        strategy: Strategy,
        resume: Checkpoint | None = None,
    ) -> None:
        if config.out_dir is None:
            raise ValueError("a RunRecorder needs config.out_dir")
        self.out_dir = config.out_dir
        self.config = config
        self.identity = identity
        self.config_hash = config_hash(identity)
        self.settings = dict(settings)
        self.history = history
        self.strategy = strategy
        self.last = resume
        self.book: dict[str, Any] = dict(resume.run) if resume else {}
        if resume is not None:
            self.book["resumed_from"] = [
                *self.book.get("resumed_from", []),
                resume.completed_rounds,
            ]
        self._seconds_before = float(self.book.get("seconds", 0.0))
        self._start = time.perf_counter()

    @property
    def completed_rounds(self) -> int:
        """The last round saved (0: none)."""
        return 0 if self.last is None else self.last.completed_rounds

    def round_completed(self, server_round: int, weights: Weights) -> None:
        """Checkpoint ``server_round``, then write provisional results."""
        self.last = Checkpoint(
            completed_rounds=server_round,
            num_rounds=self.config.num_rounds,
            status="running",
            reason=None,
            weights=list(weights),
            optimizer=strategy_state(self.strategy),
            history=RunHistory(self.history.rounds[:server_round]),
            identity=self.identity,
            config_hash=self.config_hash,
            run=self._book(),
        )
        save_checkpoint(self.out_dir, self.last)
        reason = (
            f"in progress after round {server_round} of {self.config.num_rounds}; "
            "if the run is no longer running it was killed, and it can be resumed "
            "from its checkpoint"
        )
        self._write(self.last, "running", reason, curves=False)

    def finish(
        self, status: str, reason: str | None, failed_round: RoundRecord | None = None
    ) -> None:
        """Write the final results and mark the checkpoint with ``status``.

        A run that completed no round writes only ``metrics.json`` when it
        failed (the reason, and who declined), and nothing when it was
        interrupted (nothing was learned).
        """
        if self.last is None:
            if status != "interrupted":
                self._write_empty(status, reason, failed_round)
            return
        self.last = replace(self.last, status=status, reason=reason, run=self._book())
        save_checkpoint(self.out_dir, self.last)
        self._write(self.last, status, reason, failed_round=failed_round)

    def _book(self) -> dict[str, Any]:
        seconds = self._seconds_before + time.perf_counter() - self._start
        return self.book | {"seconds": round(seconds, 3)}

    def run_description(self) -> dict[str, Any]:
        """What ``metrics.json`` says about the run (``run``)."""
        privacy = privacy_summary(self.history)["max_epsilon"]
        title = (
            f"{self.config.strategy}, {self.config.num_rounds} rounds, "
            f"seed {self.config.seed}"
        )
        central = self.config.central_dp is not None
        if privacy is not None:
            title += f", DP-SGD max epsilon {privacy:.2f}"
        elif not central:
            title += ", non-private"
        if central:
            spent = [r.central_epsilon() or 0.0 for r in self.history.rounds]
            title += f", central DP epsilon {max(spent, default=0.0):.2f}"
        return describe_run(self.config) | {
            "settings": self.settings,
            "config_hash": self.config_hash,
            "versions": versions(),
            "title": title,
            **self._book(),
        }

    def _write(
        self,
        checkpoint: Checkpoint,
        status: str,
        reason: str | None,
        *,
        failed_round: RoundRecord | None = None,
        curves: bool = True,
    ) -> None:
        write_results(
            self.out_dir,
            history=checkpoint.history,
            weights=checkpoint.weights,
            run=self.run_description(),
            status=status,
            reason=reason,
            failed_round=failed_round,
            privacy_targets=self.settings.get("privacy"),
            curves=curves,
        )

    def _write_empty(
        self, status: str, reason: str | None, failed_round: RoundRecord | None
    ) -> None:
        write_results(
            self.out_dir,
            history=RunHistory(),
            weights=None,
            run=self.run_description(),
            status=status,
            reason=reason,
            failed_round=failed_round,
            privacy_targets=self.settings.get("privacy"),
        )
        (self.out_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
