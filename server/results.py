"""The results directory of a run: metrics.json, model.npz, curves.png.

``metrics.json`` holds the run's status (``complete``, ``running``,
``interrupted`` or ``failed``, with the reason), its configuration and
provenance (versions), and every completed round's metrics from every
hospital; ``model.npz`` the global weights after the last completed round
(canonical layout, arrays ``w0``, ``w1``, ...; load with ``numpy.load`` and
the default ``allow_pickle=False``); ``curves.png`` accuracy and loss per
round per hospital. The files are rendered in memory first and then
written atomically, so no file is ever half-written; a result file a write
does not produce (no model before the first round) is removed, so the
directory never mixes two runs.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import math
import platform
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from hospfed.common.files import atomic_write_many
from hospfed.common.model import Weights
from hospfed.server.central_dp import central_summary
from hospfed.server.config import RunConfig
from hospfed.server.history import KIND_METRICS, METRIC_LABELS, RoundRecord, RunHistory
from hospfed.server.modelcard import CARD_FILE, model_card

METRICS_FILE = "metrics.json"
MODEL_FILE = "model.npz"
CURVES_FILE = "curves.png"
RESULT_FILES = (METRICS_FILE, MODEL_FILE, CURVES_FILE, CARD_FILE)

STATUSES = ("complete", "running", "interrupted", "failed")
"""``running``: written after a round while the run goes on; a run found in
that state was killed."""

VERSIONED = (
    "hospfed",
    "flwr",
    "ray",
    "tensorflow",
    "keras",
    "torch",
    "opacus",
    "numpy",
    "pandas",
    "cryptography",
)
"""Distributions whose versions ``metrics.json`` records."""


def write_results(
    out_dir: Path,
    *,
    history: RunHistory,
    weights: Weights | None,
    run: dict[str, Any],
    status: str = "complete",
    reason: str | None = None,
    failed_round: RoundRecord | None = None,
    privacy_targets: Mapping[str, Any] | None = None,
    curves: bool = True,
) -> None:
    """Write the results directory.

    Parameters
    ----------
    out_dir : Path
        Created if missing.
    history : RunHistory
        Every completed round's metrics.
    weights : list of numpy.ndarray or None
        Global weights after the last completed round; None (no round
        completed) writes no ``model.npz``.
    run : dict
        JSON-ready description of the run (config, model, seed, ...).
    status : str
        One of :data:`STATUSES`.
    reason : str, optional
        Why an incomplete run stopped.
    failed_round : RoundRecord, optional
        What the round that failed recorded (who did not train, and why).
    privacy_targets : Mapping, optional
        The privacy settings the run asked for (epsilon, delta, clip norm).
    curves : bool
        Draw ``curves.png`` (skipped in the writes after each round).

    """
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; allowed: {STATUSES}")
    final = history.final()
    extra = [] if failed_round is None else [failed_round]
    metrics = {
        "status": status,
        "reason": reason,
        "completed_rounds": len(history.rounds),
        "planned_rounds": run.get("num_rounds"),
        "run": run,
        "privacy": privacy_summary(history, extra, targets=privacy_targets)
        | _central(history, run),
        "final": final.to_json() if final else None,
        "rounds": history.to_json(),
        "failed_round": None if failed_round is None else failed_round.to_json(),
    }
    files = {
        METRICS_FILE: json.dumps(metrics, indent=2, allow_nan=False).encode(),
        CARD_FILE: model_card(metrics).encode(),
    }
    if weights is not None:
        files[MODEL_FILE] = _npz_bytes(weights)
    if curves and history.rounds:
        files[CURVES_FILE] = _curves_png(history, title=str(run.get("title", "")))
    atomic_write_many(out_dir, files)
    for name in set(RESULT_FILES) - set(files):  # from an earlier run
        with contextlib.suppress(FileNotFoundError):
            (out_dir / name).unlink()


def privacy_summary(
    history: RunHistory,
    extra: Iterable[RoundRecord] = (),
    *,
    targets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Each hospital's privacy spending, and who did not train.

    Parameters
    ----------
    history : RunHistory
        The run's completed rounds.
    extra : iterable of RoundRecord
        Further records (the round that failed).
    targets : Mapping, optional
        The privacy settings the run asked for.

    Returns
    -------
    dict
        ``max_epsilon`` (None when no hospital used DP), ``epsilon`` (last
        reported) and ``noise_multiplier`` (last reported, when hospitals
        report it) per private hospital, ``non_private`` (hospitals that
        trained without differential privacy), ``declined`` (each hospital
        that did not train in some round: those rounds and the last
        reason), ``never_trained`` (hospitals that declined every round they
        were asked), and ``targets``.

    """
    latest: dict[str, float] = {}
    noise: dict[str, float] = {}
    trained: set[str] = set()
    declined: dict[str, dict[str, Any]] = {}
    for record in [*history.rounds, *extra]:
        trained |= set(record.train)
        latest |= record.epsilons()
        noise |= {
            h: m["noise_multiplier"]
            for h, m in record.train.items()
            if "noise_multiplier" in m
        }
        for d in record.declined:
            name = d.to_json()["hospital"] or "unknown hospital"
            entry = declined.setdefault(name, {"rounds": [], "reason": d.reason})
            entry["rounds"].append(record.server_round)
            entry["reason"] = d.reason
    return {
        "max_epsilon": max(latest.values()) if latest else None,
        "epsilon": latest,
        "noise_multiplier": noise,
        "non_private": sorted(trained - set(latest)),
        "declined": declined,
        "never_trained": sorted(set(declined) - trained),
        "targets": None if targets is None else dict(targets),
    }


def _central(history: RunHistory, run: Mapping[str, Any]) -> dict[str, Any]:
    """``{"central": ...}`` with client-level central DP on, else nothing."""
    summary = central_summary(history, run.get("central_dp"))
    return {} if summary is None else {"central": summary}


def versions() -> dict[str, str | None]:
    """Python's and each of :data:`VERSIONED`'s installed version.

    Read from the installed distributions' metadata, so nothing heavy is
    imported; None for one that is not installed.
    """
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED:
        found[name] = None
        for dist in (name, f"{name}-cpu"):  # tensorflow-cpu
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                found[name] = importlib.metadata.version(dist)
                break
    return found


def load_weights(path: Path) -> Weights:
    """Read ``model.npz`` back (never unpickles).

    Parameters
    ----------
    path : Path
        A ``model.npz`` written by :func:`write_results`.

    Returns
    -------
    list of numpy.ndarray
        The weights, in order.

    """
    with np.load(path, allow_pickle=False) as archive:
        return [archive[f"w{i}"] for i in range(len(archive.files))]


def _npz_bytes(weights: Weights) -> bytes:
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {f"w{i}": w for i, w in enumerate(weights)}
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def _curves_png(history: RunHistory, *, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    private = any(
        r.epsilons() or r.central_epsilon() is not None for r in history.rounds
    )
    figure = Figure(figsize=(16 if private else 11, 4.2), layout="constrained")
    axes = figure.subplots(1, 3 if private else 2)
    rounds = [r for r in history.rounds if r.evaluate]
    hospitals = sorted({h for r in rounds for h in r.evaluate})
    kind = rounds[-1].kind() if rounds else "binary"
    for ax, metric in zip(axes, (KIND_METRICS[kind][0], "loss"), strict=False):
        if len(hospitals) <= PLOTTED_HOSPITALS:
            for hospital in hospitals:
                points = [
                    (r.server_round, r.evaluate[hospital][metric])
                    for r in rounds
                    if hospital in r.evaluate
                ]
                ax.plot(*zip(*points, strict=True), marker="o", ms=3, label=hospital)
        else:
            _range_band(ax, rounds, metric)
        mean = [(r.server_round, r.mean()[metric]) for r in rounds]
        mean = [(x, y) for x, y in mean if not math.isnan(y)]
        if mean:
            ax.plot(*zip(*mean, strict=True), color="black", lw=2.2, label="mean")
        ax.set_xlabel("round")
        ax.set_ylabel(f"local test {METRIC_LABELS[metric]}")
        ax.grid(alpha=0.3)
    if private:
        _epsilon_panel(axes[2], history)
    axes[0].legend(fontsize=8)
    figure.suptitle(title or "hospfed run")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


PLOTTED_HOSPITALS = 20
"""Above this many hospitals the curves show their range, not one line each."""


def _range_band(ax: Any, rounds: list[RoundRecord], metric: str) -> None:
    """The lowest to highest hospital's ``metric`` per round, as a band."""
    lows, highs, xs = [], [], []
    for record in rounds:
        values = [m[metric] for m in record.evaluate.values()]
        finite = [v for v in values if not math.isnan(v)]
        if finite:
            xs.append(record.server_round)
            lows.append(min(finite))
            highs.append(max(finite))
    count = len({h for r in rounds for h in r.evaluate})
    ax.fill_between(xs, lows, highs, alpha=0.25, label=f"{count} hospitals: range")


def _epsilon_panel(ax: Any, history: RunHistory) -> None:
    hospitals = sorted({h for r in history.rounds for h in r.epsilons()})
    for hospital in hospitals:
        points = [
            (r.server_round, r.epsilons()[hospital])
            for r in history.rounds
            if hospital in r.epsilons()
        ]
        ax.plot(*zip(*points, strict=True), marker="o", ms=3, label=hospital)
    central = [
        (r.server_round, e)
        for r in history.rounds
        if (e := r.central_epsilon()) is not None
    ]
    if central:
        ax.plot(
            *zip(*central, strict=True),
            color="black",
            ls="--",
            marker="s",
            ms=3,
            label="central (client-level)",
        )
    ax.set_xlabel("round")
    ax.set_ylabel("epsilon spent (RDP): DP-SGD" + (", central" if central else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def describe_run(config: RunConfig) -> dict[str, Any]:
    """JSON-ready description of a run's configuration.

    Parameters
    ----------
    config : RunConfig
        The run.

    Returns
    -------
    dict
        Every setting, plus the initialisation scheme.

    """
    data = asdict(config)
    data["out_dir"] = str(config.out_dir) if config.out_dir else None
    schema = data.pop("data_schema")
    data["data_schema"] = f"{schema['name']} v{schema['version']}"
    data["data_schema_fingerprint"] = config.data_schema.fingerprint()
    data["task"] = config.task.name
    data["task_fingerprint"] = config.task.fingerprint()
    data["task_document"] = config.task.to_document()  # the hospitals' tools read it
    data["task_standardise"] = config.task.standardise
    data["initialisation"] = "pytorch-linear-uniform"
    return data
