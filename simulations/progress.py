"""A rich progress display of a federated run, one line per round."""

from __future__ import annotations

import math
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from hospfed.server.history import RoundRecord


def _fmt(value: float) -> str:
    return "  n/a" if math.isnan(value) else f"{value:.3f}"


class RoundProgress:
    """Shows a progress bar over rounds and each round's per-hospital accuracy.

    Parameters
    ----------
    num_rounds : int
        Total rounds.
    title : str
        Shown beside the bar.
    console : rich.console.Console, optional
        Where to draw (default: stdout).
    completed : int
        Rounds already done (a resumed run).

    Attributes
    ----------
    last_round : int
        The last round shown as completed.

    """

    def __init__(
        self,
        num_rounds: int,
        title: str,
        console: Console | None = None,
        *,
        completed: int = 0,
    ) -> None:
        self.console = console or Console()
        self.last_round = completed
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rounds"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.title = title
        self.task = self.progress.add_task(title, total=num_rounds, completed=completed)

    def __enter__(self) -> RoundProgress:
        self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def on_stage(self, server_round: int, stage: str) -> None:
        """Show which SecAgg+ stage round ``server_round`` is in (it can be slow)."""
        self.progress.update(
            self.task, description=f"{self.title} · round {server_round}: {stage}"
        )

    def on_round_end(self, record: RoundRecord, num_rounds: int) -> None:
        """Print the round's per-hospital accuracy and advance the bar."""
        parts = [
            f"{h} {_fmt(m['accuracy'])}" for h, m in sorted(record.evaluate.items())
        ]
        mean, weighted = record.mean(), record.weighted()
        self.progress.console.print(
            f"round {record.server_round:>3}/{num_rounds}  accuracy: "
            + "  ".join(parts)
            + f"  | mean {_fmt(mean['accuracy'])}"
            + f"  weighted {_fmt(weighted['accuracy'])}"
            + f"  weighted AUC {_fmt(weighted['auc'])}"
            + _epsilon_text(record),
            highlight=False,
            soft_wrap=True,
        )
        self.progress.update(
            self.task, completed=record.server_round, description=self.title
        )
        self.last_round = record.server_round


def _epsilon_text(record: RoundRecord) -> str:
    epsilons = record.epsilons()
    text = ""
    if epsilons:
        each = " ".join(f"{h} {e:.2f}" for h, e in sorted(epsilons.items()))
        text += f"  | epsilon max {max(epsilons.values()):.2f} ({each})"
    if record.declined:
        text += f"  | {len(record.declined)} declined"
    if record.skipped is not None:
        text += f"  | SKIPPED, weights unchanged: {record.skipped}"
    return text
