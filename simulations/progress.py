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

from hospfed.server.history import KIND_METRICS, METRIC_LABELS, RoundRecord


def _fmt(value: float) -> str:
    return "  n/a" if math.isnan(value) else f"{value:.3f}"


class RoundProgress:
    """Shows a progress bar over rounds and each round's per-hospital metric.

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
        """Print the round's per-hospital headline metric and advance the bar."""
        self.progress.console.print(
            round_summary(record, num_rounds) + _epsilon_text(record),
            highlight=False,
            soft_wrap=True,
        )
        self.progress.update(
            self.task, completed=record.server_round, description=self.title
        )
        self.last_round = record.server_round


def round_summary(record: RoundRecord, num_rounds: int) -> str:
    """One round's headline metric (the label kind's: accuracy or RMSE).

    Every hospital's value when there are at most :data:`LISTED_HOSPITALS`,
    else their range; then the plain and example-weighted means, and the
    kind's second metric (ROC AUC, macro-F1 or MAE), weighted.
    """
    head, second = KIND_METRICS[record.kind()][:2]
    mean, weighted = record.mean(), record.weighted()
    where = "" if record.split == "test" else f"{record.split} "
    line = (
        f"round {record.server_round:>3}/{num_rounds}  {where}{METRIC_LABELS[head]}: "
        + _each({h: m.get(head, math.nan) for h, m in record.evaluate.items()})
        + f"  | mean {_fmt(mean[head])}"
        + f"  weighted {_fmt(weighted[head])}"
        + f"  weighted {METRIC_LABELS[second]} {_fmt(weighted[second])}"
    )
    if record.personalised:
        line += f"  | personalised mean {_fmt(record.mean(personalised=True)[head])}"
    return line


LISTED_HOSPITALS = 10
"""Above this many hospitals a round line gives ranges, not every value."""


def _each(values: dict[str, float], fmt: str = ".3f") -> str:
    if len(values) <= LISTED_HOSPITALS:
        return "  ".join(
            f"{h} {'n/a' if math.isnan(v) else format(v, fmt)}"
            for h, v in sorted(values.items())
        )
    finite = [v for v in values.values() if not math.isnan(v)]
    if not finite:
        return f"{len(values)} hospitals"
    low, high = format(min(finite), fmt), format(max(finite), fmt)
    return f"{len(values)} hospitals {low}..{high}"


def _epsilon_text(record: RoundRecord) -> str:
    epsilons = record.epsilons()
    text = ""
    if epsilons:
        each = _each(epsilons, ".2f").replace("  ", " ")
        text += f"  | epsilon max {max(epsilons.values()):.2f} ({each})"
    central = record.central_epsilon()
    if central is not None:
        text += f"  | central epsilon {central:.2f}"
    if record.declined:
        text += f"  | {len(record.declined)} declined"
    if record.skipped is not None:
        text += f"  | SKIPPED, weights unchanged: {record.skipped}"
    return text
