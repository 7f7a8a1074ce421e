"""Choosing a run's settings on validation data only (``hospfed-sim tune``).

Every hospital holds a validation set out of its training rows (the task's
``[split] validation-fraction``, stratified where the label allows). Each
candidate of a grid of settings (client and server learning rates, local
steps, the DP clip norm, personalisation's settings, ...) is run once per
seed with ``evaluate-on = "validation"``: the hospitals score it on their
validation rows, and never read a test row. The candidate with the best
mean over seeds of the mean local validation score (accuracy; RMSE for a
continuous label, lowest best) is chosen; ties go to the first in grid
order. Then the chosen settings are run once per seed with
``evaluate-on = "validation-then-test"``: each hospital's test set is read
once, in the final round, and that is the number reported, labelled with
the split that chose it. The final runs train on the same rows the
candidates did (the training rows minus the validation rows): the model
tested is the model chosen.

With DP, every run is a fresh simulation with fresh ledgers (a research
setting on one machine). In a real federation each tuning run would spend
the hospitals' budgets, and the choice itself leaks a little about the
validation data; neither is accounted for here (see the README).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hospfed.client.privacy import PrivacySettings
from hospfed.common.errors import ConfigError, HospfedError
from hospfed.common.schema import DatasetSchema
from hospfed.common.task import LearningTask
from hospfed.server.app import RunResult
from hospfed.server.config import ADAPTIVE_STRATEGIES, RunConfig
from hospfed.server.history import KIND_METRICS, RoundRecord
from hospfed.simulations.options import dp_rounds, with_validation

__all__ = [
    "TUNABLE",
    "Candidate",
    "TuneSetup",
    "candidates",
    "default_grid",
    "parse_grid",
    "personalised_objective",
    "run_config",
    "score",
    "with_validation",
]

TUNABLE: dict[str, type] = {
    "learning-rate": float,
    "server-learning-rate": float,
    "local-steps": int,
    "proximal-mu": float,
    "clip-norm": float,
    "personal-learning-rate": float,
    "personal-steps": int,
    "ditto-lambda": float,
}
"""Settings a grid may vary (run-config keys; ``clip-norm`` is each
hospital's DP-SGD clip norm)."""
PRIVATE_ONLY = frozenset({"clip-norm"})
PERSONAL_ONLY = frozenset({"personal-learning-rate", "personal-steps", "ditto-lambda"})


def parse_grid(entries: Sequence[str]) -> dict[str, tuple[float | int, ...]]:
    """Read ``KEY=V1,V2,...`` entries (each key once, values distinct).

    Raises
    ------
    ConfigError
        For an unknown key, a repeated key, or a value that is not a number.

    """
    grid: dict[str, tuple[float | int, ...]] = {}
    for entry in entries:
        key, sep, values = entry.partition("=")
        key = key.strip()
        if not sep or not values.strip():
            raise ConfigError(
                f"--grid {entry!r}: write KEY=V1,V2 (e.g. learning-rate=0.01,0.03)"
            )
        if key not in TUNABLE:
            tunable = ", ".join(TUNABLE)
            raise ConfigError(
                f"--grid {entry!r}: {key!r} cannot be tuned; tunable: {tunable}"
            )
        if key in grid:
            raise ConfigError(f"--grid: {key!r} is given twice; list its values once")
        try:
            parsed = tuple(TUNABLE[key](v.strip()) for v in values.split(","))
        except ValueError:
            kind = "whole numbers" if TUNABLE[key] is int else "numbers"
            raise ConfigError(f"--grid {entry!r}: {key} takes {kind}") from None
        if len(set(parsed)) != len(parsed):
            raise ConfigError(f"--grid {entry!r}: a value is listed twice")
        grid[key] = parsed
    return grid


def default_grid(strategy: str) -> dict[str, tuple[float | int, ...]]:
    """What is tuned when no ``--grid`` is given: the step size that matters most.

    The server learning rate of an adaptive strategy (FedAdam, FedYogi,
    FedAdagrad), the client learning rate otherwise; three values a half
    decade apart around the default.
    """
    if strategy in ADAPTIVE_STRATEGIES:
        return {"server-learning-rate": (0.01, 0.03, 0.1)}
    return {"learning-rate": (0.001, 0.003162, 0.01)}


@dataclass(frozen=True)
class Candidate:
    """One point of the grid: run-config keys and their values."""

    settings: dict[str, float | int]

    def label(self) -> str:
        """``key=value`` pairs, for tables and messages."""
        return " ".join(f"{k}={v:g}" for k, v in self.settings.items()) or "defaults"


def candidates(grid: Mapping[str, Sequence[float | int]]) -> list[Candidate]:
    """Every combination of the grid's values, in grid order."""
    keys = list(grid)
    return [
        Candidate(dict(zip(keys, values, strict=True)))
        for values in itertools.product(*(grid[k] for k in keys))
    ]


@dataclass(frozen=True, kw_only=True)
class TuneSetup:
    """What stays fixed while the grid varies.

    Attributes
    ----------
    base : dict
        Run-config keys of every run (strategy, rounds, model, ...).
    task : LearningTask
        The task, with its validation split.
    raw_schema : DatasetSchema or None
        The raw-export schema (None: the task's built-in default).
    backend : str
        ``keras``, ``torch`` or ``mixed``.
    privacy : PrivacySettings or None
        Every hospital's DP settings (None: non-private).
    seeds : tuple of int
        Seeds each candidate is run with.
    grid : dict
        The settings to vary.
    objective : str
        ``global`` (the federated model's score) or ``personalised`` (the
        hospitals' personalised models'; a run with ``personalise``).

    """

    base: dict[str, Any]
    task: LearningTask
    raw_schema: DatasetSchema | None
    backend: str
    privacy: PrivacySettings | None
    seeds: tuple[int, ...]
    grid: dict[str, tuple[float | int, ...]] = field(default_factory=dict)
    objective: str = "global"

    def __post_init__(self) -> None:
        if not self.task.split.has_validation:
            raise ConfigError("tuning needs a task that holds out a validation set")
        if not self.seeds:
            raise ConfigError("tuning needs at least one seed")
        private = self.privacy is not None
        personal = str(self.base.get("personalise", "none")) != "none"
        for key in self.grid:
            if key in PRIVATE_ONLY and not private:
                raise ConfigError(f"--grid {key} has no effect without --epsilon")
            if key in PERSONAL_ONLY and not personal:
                raise ConfigError(f"--grid {key} has no effect without --personalise")
        if personalised_objective(self.objective) and not personal:
            raise ConfigError("--objective personalised needs --personalise")

    @property
    def metric(self) -> str:
        """The headline metric of the task's label kind (accuracy or RMSE)."""
        return KIND_METRICS[self.task.label.kind][0]

    @property
    def lower_is_better(self) -> bool:
        """RMSE is minimised; accuracy maximised."""
        return self.metric == "rmse"


def personalised_objective(objective: str) -> bool:
    """Whether ``objective`` scores the personalised models.

    Raises
    ------
    ConfigError
        For an objective that is neither ``global`` nor ``personalised``.

    """
    if objective not in ("global", "personalised"):
        raise ConfigError(f"--objective {objective!r}: use global or personalised")
    return objective == "personalised"


def run_config(
    setup: TuneSetup,
    candidate: Candidate,
    *,
    seed: int,
    evaluate_on: str,
    out_dir: Path,
) -> tuple[RunConfig, PrivacySettings | None]:
    """The run of ``candidate`` with ``seed``, and the hospitals' DP settings."""
    keys = {k: v for k, v in candidate.settings.items() if k not in PRIVATE_ONLY}
    mapping = setup.base | keys
    mapping |= {"seed": seed, "evaluate-on": evaluate_on, "out-dir": str(out_dir)}
    config = RunConfig.from_mapping(
        mapping, raw_schema=setup.raw_schema, task=setup.task
    )
    privacy = setup.privacy
    if privacy is not None:
        # the budget lasts this run's rounds and its personal DP-SGD, counted
        # in rounds of this candidate's local steps (which the grid may vary)
        privacy = replace(privacy, planned_rounds=dp_rounds(config, config.num_rounds))
    if privacy is not None and "clip-norm" in candidate.settings:
        privacy = replace(privacy, clip_norm=float(candidate.settings["clip-norm"]))
    return config, privacy


def score(final: RoundRecord, metric: str, *, personalised: bool) -> float:
    """The mean over hospitals of ``metric`` in a run's final round.

    Raises
    ------
    HospfedError
        If the round has no such score (e.g. no hospital personalised).

    """
    value = final.mean(personalised=personalised).get(metric, math.nan)
    if math.isnan(value):
        what = "personalised " if personalised else ""
        raise HospfedError(f"the run's final round has no {what}{metric} to compare")
    return value


RunFn = Callable[[RunConfig, PrivacySettings | None], RunResult]
"""Runs one federation (a fresh simulation) and returns how it ended."""


@dataclass
class Trial:
    """One run of the search: a candidate with one seed, and its score."""

    candidate: int
    seed: int
    score: float
    out_dir: Path


def summarise(
    setup: TuneSetup, grid: Sequence[Candidate], trials: Sequence[Trial]
) -> list[dict[str, Any]]:
    """Each candidate's validation scores over seeds (mean and std)."""
    rows = []
    for index, candidate in enumerate(grid):
        scores = [t.score for t in trials if t.candidate == index]
        rows.append(
            {
                "settings": candidate.settings,
                "scores": scores,
                "mean": statistics.fmean(scores) if scores else None,
                "std": statistics.pstdev(scores) if len(scores) > 1 else 0.0,
                "complete": len(scores) == len(setup.seeds),
            }
        )
    return rows


def choose(setup: TuneSetup, rows: Sequence[Mapping[str, Any]]) -> int:
    """The index of the best candidate run with every seed (first on ties)."""
    complete = [(i, r["mean"]) for i, r in enumerate(rows) if r["complete"]]
    if not complete:
        raise HospfedError("no candidate was run with every seed")
    sign = 1.0 if setup.lower_is_better else -1.0
    return min(complete, key=lambda item: (sign * item[1], item[0]))[0]
