"""What ``hospfed-sim tune`` writes and prints: ``tune.json``, ``chosen.toml``, a table.

``tune.json`` (format ``hospfed-tune`` version 1) holds every candidate's
validation score per seed with its mean and std, the choice, what chose it
(the split, its fraction and seed, the metric, the seeds), the fixed
settings, and the chosen settings' test scores per seed and hospital, global
and personalised, with their mean and std over seeds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tomli_w
from rich.table import Table

from hospfed.common.files import atomic_write
from hospfed.simulations.tune import Candidate, Trial, TuneSetup, summarise

__all__ = ["final_scores", "report_table", "tune_report", "write_chosen"]

TUNE_FORMAT = "hospfed-tune"
TUNE_FORMAT_VERSION = 1


def final_scores(final: Any, seed: int, metric: str, run_dir: Path) -> dict[str, Any]:
    """One final run's test scores: the means, and each hospital's (JSON-ready)."""
    personalised = final.mean(personalised=True).get(metric, math.nan)
    return {
        "seed": seed,
        "global": final.mean()[metric],
        "personalised": None if math.isnan(personalised) else personalised,
        "hospitals": {
            h: {
                "global": scores.get(metric),
                "personalised": final.personalised.get(h, {}).get(metric),
            }
            for h, scores in sorted(final.evaluate.items())
        },
        "results": str(run_dir),
    }


def tune_report(
    setup: TuneSetup,
    grid: Sequence[Candidate],
    trials: Sequence[Trial],
    finals: Sequence[dict[str, Any]],
    status: str,
    chosen: int | None,
) -> dict[str, Any]:
    """The whole ``tune.json`` document, as far as the search has come."""
    split = setup.task.split
    test: dict[str, Any] | None = None
    if finals:
        test = {"seeds": list(finals)}
        for kind in ("global", "personalised"):
            values = [f[kind] for f in finals if f[kind] is not None]
            if values:
                test[kind] = {
                    "mean": statistics.fmean(values),
                    "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
                }
    return {
        "format": TUNE_FORMAT,
        "format-version": TUNE_FORMAT_VERSION,
        "status": status,
        "chosen_on": {
            "split": "validation",
            "validation_fraction": split.validation_fraction,
            "validation_seed": split.validation_seed,
            "metric": f"mean over hospitals of local validation {setup.metric}"
            + (" (personalised models)" if setup.objective == "personalised" else ""),
            "seeds": list(setup.seeds),
        },
        "fixed": setup.base,
        "privacy": None
        if setup.privacy is None
        else {"epsilon": setup.privacy.epsilon, "delta": setup.privacy.delta},
        "candidates": summarise(setup, grid, trials),
        "chosen": None if chosen is None else grid[chosen].settings,
        "test": test,
        "test_note": "each hospital's test set read once per seed, in the final "
        "round of the chosen settings' run; personalised numbers are of the "
        "models each hospital adapted on its own training rows",
    }


def write_chosen(out_dir: Path, setup: TuneSetup, chosen: Candidate) -> None:
    """Write ``chosen.toml``: the fixed and chosen settings as run-config keys."""
    keys = {k: v for k, v in setup.base.items() if v not in (None, "")}
    keys |= {k: v for k, v in chosen.settings.items() if k != "clip-norm"}
    header = (
        f"# chosen by hospfed-sim tune on validation {setup.metric} "
        f"(seeds {', '.join(map(str, setup.seeds))}); run-config keys\n"
    )
    if "clip-norm" in chosen.settings:
        header += f"# each hospital's clip-norm: {chosen.settings['clip-norm']:g}\n"
    atomic_write(out_dir / "chosen.toml", (header + tomli_w.dumps(keys)).encode())


def report_table(report: dict[str, Any], label: str) -> Table:
    """Each candidate's validation score, the choice, and the test result."""
    table = Table(title=f"validation {label} (mean over hospitals), per candidate")
    for column in ("candidate", "mean", "std", "chosen"):
        table.add_column(column)
    for row in report["candidates"]:
        settings = " ".join(f"{k}={v:g}" for k, v in row["settings"].items())
        table.add_row(
            settings,
            f"{row['mean']:.4f}",
            f"{row['std']:.4f}",
            "*" if row["settings"] == report["chosen"] else "",
        )
    test = report["test"] or {}
    for kind in ("global", "personalised"):
        if kind in test:
            table.caption = (table.caption or "") + (
                f"  test {label}, {kind}: {test[kind]['mean']:.4f} +- "
                f"{test[kind]['std']:.4f}"
            )
    return table
