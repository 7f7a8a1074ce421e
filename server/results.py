"""The results directory of a run: metrics.json, model.npz, curves.png.

``metrics.json`` holds the run's configuration and every round's metrics
from every hospital; ``model.npz`` the final global weights (canonical
layout, arrays ``w0``, ``w1``, ...; load with ``numpy.load`` and the default
``allow_pickle=False``); ``curves.png`` accuracy and loss per round per
hospital. All three are rendered in memory first and then written
atomically, so a failed run leaves no partial results.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from hospfed.common.files import atomic_write_many
from hospfed.common.model import Weights
from hospfed.server.config import RunConfig
from hospfed.server.history import RunHistory

METRICS_FILE = "metrics.json"
MODEL_FILE = "model.npz"
CURVES_FILE = "curves.png"


def write_results(
    out_dir: Path,
    *,
    history: RunHistory,
    weights: Weights,
    run: dict[str, Any],
) -> None:
    """Write the results directory.

    Parameters
    ----------
    out_dir : Path
        Created if missing.
    history : RunHistory
        Every round's metrics.
    weights : list of numpy.ndarray
        Final global weights.
    run : dict
        JSON-ready description of the run (config, model, seed, ...).

    """
    final = history.final()
    metrics = {
        "run": run,
        "privacy": privacy_summary(history),
        "final": final.to_json() if final else None,
        "rounds": history.to_json(),
    }
    files = {
        METRICS_FILE: json.dumps(metrics, indent=2, allow_nan=False).encode(),
        MODEL_FILE: _npz_bytes(weights),
        CURVES_FILE: _curves_png(history, title=str(run.get("title", ""))),
    }
    atomic_write_many(out_dir, files)


def privacy_summary(history: RunHistory) -> dict[str, Any]:
    """Each hospital's last reported epsilon, and who trained without DP.

    Parameters
    ----------
    history : RunHistory
        The run's rounds.

    Returns
    -------
    dict
        ``max_epsilon`` (None when no hospital used DP), ``epsilon`` per
        private hospital, and ``non_private``: hospitals that trained
        without differential privacy.

    """
    latest: dict[str, float] = {}
    trained: set[str] = set()
    for record in history.rounds:
        trained |= set(record.train)
        latest |= record.epsilons()
    return {
        "max_epsilon": max(latest.values()) if latest else None,
        "epsilon": latest,
        "non_private": sorted(trained - set(latest)),
    }


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

    private = any(r.epsilons() for r in history.rounds)
    figure = Figure(figsize=(16 if private else 11, 4.2), layout="constrained")
    axes = figure.subplots(1, 3 if private else 2)
    rounds = [r for r in history.rounds if r.evaluate]
    hospitals = sorted({h for r in rounds for h in r.evaluate})
    for ax, metric in zip(axes, ("accuracy", "loss"), strict=False):
        for hospital in hospitals:
            points = [
                (r.server_round, r.evaluate[hospital][metric])
                for r in rounds
                if hospital in r.evaluate
            ]
            ax.plot(*zip(*points, strict=True), marker="o", ms=3, label=hospital)
        mean = [(r.server_round, r.mean()[metric]) for r in rounds]
        mean = [(x, y) for x, y in mean if not math.isnan(y)]
        if mean:
            ax.plot(*zip(*mean, strict=True), color="black", lw=2.2, label="mean")
        ax.set_xlabel("round")
        ax.set_ylabel(f"local test {metric}")
        ax.grid(alpha=0.3)
    if private:
        _epsilon_panel(axes[2], history)
    axes[0].legend(fontsize=8)
    figure.suptitle(title or "hospfed run")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _epsilon_panel(ax: Any, history: RunHistory) -> None:
    hospitals = sorted({h for r in history.rounds for h in r.epsilons()})
    for hospital in hospitals:
        points = [
            (r.server_round, r.epsilons()[hospital])
            for r in history.rounds
            if hospital in r.epsilons()
        ]
        ax.plot(*zip(*points, strict=True), marker="o", ms=3, label=hospital)
    ax.set_xlabel("round")
    ax.set_ylabel("epsilon spent (DP-SGD, RDP)")
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
    data["initialisation"] = "pytorch-linear-uniform"
    return data
