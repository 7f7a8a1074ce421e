"""``hospfed-server run``: submit a training run to the daemon and follow it.

This module owns a deployed run's life as the coordinator sees it
(:func:`submit_and_follow`): the run config is resolved here first
(:class:`~hospfed.server.config.RunConfig`, so a typo fails before anything
is submitted), its results directory is ``STATE/runs/RUN`` (absolute: the
ServerApp runs in the SuperLink's working directory), the run is submitted
through the Control API on loopback, and each round is printed as the
ServerApp's recorder writes ``metrics.json``. The outcome is Flower's run
status (``flwr ls``, never ``flwr run``'s exit code) together with
``metrics.json``'s own: anything but a completed run exits non-zero with
the reason. SIGINT / SIGTERM stops the run on the daemon and exits 130 /
143; the rounds done so far stay in the results directory.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hospfed.common.daemons import Signals
from hospfed.common.errors import EXIT_RUN_FAILED, ConfigError, HospfedError
from hospfed.common.files import atomic_write, atomic_write_many
from hospfed.server.config import RunConfig
from hospfed.server.daemon import RESUME_KEY, StateDir, read_info
from hospfed.server.modelcard import CARD_FILE, model_card
from hospfed.server.results import METRICS_FILE

POLL_SECONDS = 2.0
STOP_WAIT = 60.0
"""Seconds to wait for Flower to end a stopped run before marking its results."""


class RunError(HospfedError):
    """A deployed run did not complete."""

    exit_code = EXIT_RUN_FAILED


def new_run_dir(state: StateDir) -> Path:
    """A fresh results directory under ``STATE/runs`` (0700), named by UTC time."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    for suffix in ("", *(f"-{n}" for n in range(2, 100))):
        path = state.runs / f"{stamp}{suffix}"
        try:
            path.mkdir(mode=0o700, parents=True)
        except FileExistsError:
            continue
        return path
    raise ConfigError(f"too many runs started this second in {state.runs}")


def round_line(row: dict[str, Any], planned: int) -> str:
    """One round as the progress shows it (metrics only, no patient value)."""
    parts = [f"round {row['round']}/{planned}"]
    weighted = row.get("weighted") or {}
    for name in ("accuracy", "auc", "macro_f1", "rmse", "loss"):
        if name in weighted and weighted[name] is not None:
            parts.append(f"{name} {weighted[name]:.4f}")
    epsilon = (row.get("epsilon") or {}).get("max")
    if epsilon is not None:
        parts.append(f"epsilon max {epsilon:.3f}")
    central = (row.get("central_dp") or {}).get("epsilon")
    if central is not None:
        parts.append(f"central epsilon {central:.3f}")
    parts.append(f"hospitals {len(row.get('evaluate') or row.get('train') or {})}")
    if row.get("declined"):
        parts.append(f"declined {', '.join(map(str, row['declined']))}")
    return ", ".join(parts)


def _metrics(out: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((out / "metrics.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None  # not written yet, or being replaced
    return data if isinstance(data, dict) else None


RUN_CONFIG_FILE = "run-config.json"
"""The ``key=value`` pairs a run was submitted with, kept for ``--resume``."""


def submit_and_follow(
    state: StateDir,
    pairs: dict[str, str],
    *,
    resume: Path | None = None,
    echo: Callable[[str], None] = print,
) -> int:
    """Submit a run, print each round, and return the exit code.

    Parameters
    ----------
    state : StateDir
        The running daemon's state directory.
    pairs : dict
        Run config ``key=value`` pairs (strings, as the CLI gives them).
        With ``resume``, they override the run's own (more rounds, say).
    resume : Path, optional
        A results directory of this daemon whose run stopped: continue it
        from its checkpoint (the rounds it completed are not trained
        again), under its own settings.
    echo : callable
        Where progress lines go.

    Returns
    -------
    int
        0 when the run completed, 130 / 143 after a signal.

    Raises
    ------
    RunError
        If the run failed or was stopped, with the reason.

    """
    if read_info(state) is None:
        raise ConfigError(
            f"no daemon is running on {state.root}: start it with "
            f"`hospfed-server start --state {state.root} --certs DIR`"
        )
    if "out-dir" in pairs:
        raise ConfigError(
            "out-dir is chosen by the daemon (STATE/runs/RUN); leave it out"
        )
    if resume is None:
        RunConfig.from_mapping(pairs)  # refuse a bad config before submitting
        out = new_run_dir(state)
        pairs = pin_definition_files(pairs, out)
        text = json.dumps(pairs, indent=2, sort_keys=True)
        atomic_write(out / RUN_CONFIG_FILE, text.encode(), mode=0o600)
        extra = {}
    else:
        out = resume.expanduser().absolute()
        pairs = _resumed_pairs(out, pairs)
        extra = {RESUME_KEY: "true"}
    shown = len((_metrics(out) or {}).get("rounds") or [])
    control = state.control()
    run_id = control.start_run(state.app, {**pairs, **extra, "out-dir": str(out)})
    echo(
        f"run {run_id} submitted; results in {out}"
        + (f" (resuming after round {shown})" if resume else "")
    )
    with Signals() as signals:
        while True:
            status = control.run_status(run_id)
            metrics = _metrics(out)
            if metrics is not None:
                rows = metrics.get("rounds") or []
                for row in rows[shown:]:
                    echo(round_line(row, int(metrics.get("planned_rounds", 0))))
                shown = len(rows)
            if str(status.get("status", "")).startswith("finished"):
                break
            if signals.received is not None:
                control.stop_run(run_id)
                _mark_stopped(control, run_id, out)
                print(
                    f"hospfed-server: run {run_id} stopped (signal "
                    f"{signals.received}); {shown} rounds kept in {out}",
                    file=sys.stderr,
                )
                return signals.exit_code
            time.sleep(POLL_SECONDS)
    return _outcome(run_id, status, _metrics(out), out, echo)


def _mark_stopped(control: Any, run_id: str, out: Path) -> None:
    """After a stop, make sure the results say ``interrupted``.

    The ServerApp records the stop itself when Flower ends it with an
    exception; when Flower ends its process outright, ``metrics.json`` is
    left saying ``running``. Once Flower reports the run finished (its
    ServerApp is gone), that status is replaced here, atomically, with the
    model card.
    """
    deadline = time.monotonic() + STOP_WAIT
    while time.monotonic() < deadline:
        if str(control.run_status(run_id).get("status", "")).startswith("finished"):
            break
        time.sleep(POLL_SECONDS / 2)
    metrics = _metrics(out)
    if metrics is None or metrics.get("status") != "running":
        return
    done = int(metrics.get("completed_rounds") or 0)
    metrics["status"] = "interrupted"
    metrics["reason"] = (
        f"the run was stopped during round {done + 1} (hospfed-server run interrupted)"
    )
    atomic_write_many(
        out,
        {
            METRICS_FILE: json.dumps(metrics, indent=2, allow_nan=False).encode(),
            CARD_FILE: model_card(metrics).encode(),
        },
    )


PINNED_FILES = {"task": "task", "schema": "schema"}
"""Run-config keys that may name a file on the coordinator, and the name of
the copy kept in the run's directory."""


def pin_definition_files(pairs: dict[str, str], out: Path) -> dict[str, str]:
    """Copy a task or schema *file* named by the run config into the run's directory.

    The daemon's ServerApp reads the copy (an absolute path), so the run
    does not depend on the submitter's working directory, and a later edit
    of the original cannot change a run under way or its resumption; the
    copy also documents the run. Built-in names are left as they are.

    Returns
    -------
    dict
        ``pairs`` with such values replaced by the copies' paths.

    """
    from hospfed.common.datasets import BUILTIN_SCHEMAS, BUILTIN_TASKS

    builtin = {"task": BUILTIN_TASKS, "schema": BUILTIN_SCHEMAS}
    pinned = dict(pairs)
    for key, stem in PINNED_FILES.items():
        value = pairs.get(key, "").strip()
        if not value or value in builtin[key]:
            continue
        source = Path(value).expanduser()
        copy = out / f"{stem}{source.suffix.lower() or '.toml'}"
        atomic_write(copy, source.read_bytes(), mode=0o600)
        pinned[key] = str(copy.absolute())
    return pinned


def _resumed_pairs(out: Path, overrides: dict[str, str]) -> dict[str, str]:
    """The stopped run's own pairs, with ``overrides``; ConfigError if none."""
    try:
        pairs = json.loads((out / RUN_CONFIG_FILE).read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{out} is not a run of this daemon (no {RUN_CONFIG_FILE}): give "
            "--resume STATE/runs/RUN"
        ) from None
    if not (out / "checkpoint.npz").exists():
        raise ConfigError(f"{out} has no checkpoint: no round completed; start anew")
    merged = {**pairs, **overrides}
    RunConfig.from_mapping(merged)
    return merged


def _outcome(
    run_id: str,
    status: dict[str, Any],
    metrics: dict[str, Any] | None,
    out: Path,
    echo: Callable[[str], None],
) -> int:
    flower = str(status.get("status"))
    ours = (metrics or {}).get("status")
    if flower == "finished:completed" and ours == "complete" and metrics:
        done = metrics["completed_rounds"]
        echo(f"run {run_id} complete: {done} rounds; results in {out}")
        return 0
    reason = (metrics or {}).get("reason") or status.get("status-details")
    if not reason or reason == "N/A":
        reason = "no reason recorded (see the daemon's superlink.log)"
    raise RunError(
        f"run {run_id} did not complete (Flower: {flower}; hospfed: "
        f"{ours or 'no results'}): {reason}; results so far in {out}"
    )
