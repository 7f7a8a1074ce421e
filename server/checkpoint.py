"""Checkpoints of a federated run, to resume it from its last completed round.

One file, ``checkpoint.npz`` in the run's results directory, rewritten
atomically after every completed round (temporary file, fsync, rename,
fsync of the directory): a reader, or a resumed run, sees the previous
round's checkpoint or the new one, never a mix. Nothing is pickled.

Format v1 (a NumPy ``.npz`` archive, read with ``allow_pickle=False``):

``meta``
    ``uint8`` array of UTF-8 JSON: ``format`` (``"hospfed-checkpoint"``),
    ``version`` (1), ``completed_rounds``, ``num_rounds`` (planned),
    ``status`` and ``reason``, ``identity`` (every setting that decides
    what the run computes, :func:`run_identity`) and ``config_hash`` (its
    SHA-256, :func:`config_hash`), ``history`` (every completed round's
    metrics, as in ``metrics.json``), ``run`` (bookkeeping: wall time, the
    rounds a run was resumed from) and ``arrays`` (how many arrays each
    group below has).
``weights_0``, ``weights_1``, ...
    The global weights after the last completed round.
``m_t_0``, ..., ``v_t_0``, ...
    The server optimiser's first and second moments (Flower's FedAdam,
    FedYogi and FedAdagrad keep them as ``m_t`` and ``v_t``), when it has
    any: without them a resumed adaptive run would not continue the same
    optimisation.

``tests/server/test_checkpoint.py`` loads a checked-in v1 checkpoint
(``tests/server/vectors/``) and rewrites it byte for byte.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from flwr.server.strategy import FedOpt, Strategy

from hospfed.common.datasets import FED_HEART_TASK
from hospfed.common.errors import ConfigError, DataError
from hospfed.common.files import atomic_write
from hospfed.common.model import Weights
from hospfed.server.config import RunConfig
from hospfed.server.history import RunHistory
from hospfed.server.results import describe_run

CHECKPOINT_FILE = "checkpoint.npz"
FORMAT = "hospfed-checkpoint"
VERSION = 1
OPTIMIZER_STATE: tuple[str, ...] = ("m_t", "v_t")
"""The server-optimiser attributes of Flower's FedOpt strategies."""

_NEW_UNLESS_DEFAULT: dict[str, Any] = {
    "task": FED_HEART_TASK.name,
    "task_fingerprint": FED_HEART_TASK.fingerprint(),
    "task_standardise": "hospital",
    "fraction_fit": 1.0,
    "fraction_evaluate": 1.0,
    "evaluate_on": "test",
}
"""Settings added after format v1 with a default that v1 runs had: part of
the identity only when they differ from it, so a v1 checkpoint still resumes
(and hashes) as before."""
_NOT_IDENTITY = ("num_rounds", "out_dir", "task_document")
"""A resumed run may extend or move; the task is in it by its fingerprint."""
_NEW_WHEN_SET = (
    "secure_aggregation",
    "max_update_norm",
    "trim_fraction",
    "byzantine_hospitals",
    "central_dp",
    "personal",
)
"""Settings added after format v1: part of the identity only when set, so
runs recorded before they existed keep their config hash (and resume)."""


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """A run as of its last completed round.

    Attributes
    ----------
    completed_rounds : int
        Rounds 1 to ``completed_rounds`` are done.
    num_rounds : int
        Rounds the run was planned to have.
    status : str
        ``running``, ``complete``, ``interrupted`` or ``failed``.
    reason : str or None
        Why an incomplete run stopped.
    weights : list of numpy.ndarray
        Global weights after round ``completed_rounds``.
    optimizer : dict of str to list of numpy.ndarray
        The server optimiser's state (``m_t``, ``v_t``); empty for FedAvg
        and FedProx, or before the first aggregation.
    history : RunHistory
        Every completed round's metrics.
    identity : dict
        The settings that decide what the run computes.
    config_hash : str
        ``sha256:`` and the hex digest of ``identity``.
    run : dict
        Bookkeeping (``seconds``, ``resumed_from``).

    """

    completed_rounds: int
    num_rounds: int
    status: str
    reason: str | None
    weights: Weights
    optimizer: dict[str, Weights]
    history: RunHistory
    identity: dict[str, Any]
    config_hash: str
    run: dict[str, Any] = field(default_factory=dict)

    def with_status(self, status: str, reason: str | None) -> Checkpoint:
        """The same checkpoint with another status."""
        return replace(self, status=status, reason=reason)


def run_identity(config: RunConfig, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting that decides what a run computes, JSON-ready.

    Parameters
    ----------
    config : RunConfig
        The run; its planned rounds and output directory are left out (a
        resumed run may be extended, and its directory moved).
    settings : Mapping
        What the caller decides beyond ``config`` (e.g. the simulation's
        backends and privacy targets).

    Returns
    -------
    dict
        ``describe_run(config)`` without those two keys, plus ``settings``.

    """
    identity = {
        k: v
        for k, v in describe_run(config).items()
        if k not in _NOT_IDENTITY
        and not (k in _NEW_WHEN_SET and v is None)
        and not (k in _NEW_UNLESS_DEFAULT and v == _NEW_UNLESS_DEFAULT[k])
    }
    identity["settings"] = json.loads(json.dumps(dict(settings), default=str))
    return identity


def config_hash(identity: Mapping[str, Any]) -> str:
    """``sha256:`` and the digest of ``identity`` as canonical JSON.

    Canonical: sorted keys, no spaces, floats as Python's shortest repr,
    NaN refused; so the same settings hash the same in every process.
    """
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Each setting that differs, as ``key: old -> new`` (nested keys dotted)."""
    flat_old, flat_new = _flatten(old), _flatten(new)
    return [
        f"{key}: {flat_old.get(key, '(unset)')!r} -> {flat_new.get(key, '(unset)')!r}"
        for key in sorted(set(flat_old) | set(flat_new))
        if flat_old.get(key, _MISSING) != flat_new.get(key, _MISSING)
    ]


_MISSING = object()


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_same_config(checkpoint: Checkpoint, identity: Mapping[str, Any]) -> None:
    """Refuse to resume ``checkpoint`` under other settings.

    Raises
    ------
    ConfigError
        Naming each setting that differs.

    """
    if config_hash(identity) == checkpoint.config_hash:
        return
    changes = config_differences(checkpoint.identity, identity) or ["(unknown)"]
    raise ConfigError(
        "the checkpoint was made under another configuration (config hash "
        f"{checkpoint.config_hash[:19]}...); changed: {'; '.join(changes)}; "
        "resume with the run's own settings, or start a new run elsewhere"
    )


def strategy_state(strategy: Strategy) -> dict[str, Weights]:
    """The server optimiser's state of a Flower strategy (copies).

    Parameters
    ----------
    strategy : Strategy
        One of Flower's strategies; only the FedOpt family (FedAdam,
        FedYogi, FedAdagrad) has state: ``m_t`` and ``v_t``.

    Returns
    -------
    dict
        ``{"m_t": [...], "v_t": [...]}``, without the moments not yet set.

    """
    if not isinstance(strategy, FedOpt):
        return {}
    state: dict[str, Weights] = {}
    for name in OPTIMIZER_STATE:
        value = getattr(strategy, name)
        if value is not None:
            state[name] = [np.array(a, copy=True) for a in value]
    return state


def restore_strategy_state(strategy: Strategy, state: Mapping[str, Weights]) -> None:
    """Put a saved optimiser state back into a freshly built strategy.

    Raises
    ------
    ConfigError
        If the state does not belong to this kind of strategy.

    """
    if not state:
        return
    if not isinstance(strategy, FedOpt) or set(state) - set(OPTIMIZER_STATE):
        raise ConfigError(
            f"the checkpoint holds optimiser state {sorted(state)} that strategy "
            f"{type(strategy).__name__} does not have"
        )
    for name, arrays in state.items():
        setattr(strategy, name, [np.array(a, copy=True) for a in arrays])


def checkpoint_bytes(checkpoint: Checkpoint) -> bytes:
    """Serialise ``checkpoint`` (format v1, see the module docstring)."""
    arrays: dict[str, np.ndarray] = {}
    counts = {"weights": len(checkpoint.weights)}
    for i, w in enumerate(checkpoint.weights):
        arrays[f"weights_{i}"] = np.asarray(w)
    for name in sorted(checkpoint.optimizer):
        counts[name] = len(checkpoint.optimizer[name])
        for i, a in enumerate(checkpoint.optimizer[name]):
            arrays[f"{name}_{i}"] = np.asarray(a)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "completed_rounds": checkpoint.completed_rounds,
        "num_rounds": checkpoint.num_rounds,
        "status": checkpoint.status,
        "reason": checkpoint.reason,
        "config_hash": checkpoint.config_hash,
        "identity": checkpoint.identity,
        "history": checkpoint.history.to_json(),
        "run": checkpoint.run,
        "arrays": counts,
    }
    text = json.dumps(meta, sort_keys=True, indent=1, allow_nan=False)
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.frombuffer(text.encode(), dtype=np.uint8), **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def save_checkpoint(out_dir: Path, checkpoint: Checkpoint) -> None:
    """Write ``out_dir/checkpoint.npz`` atomically (``out_dir`` is created)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / CHECKPOINT_FILE, checkpoint_bytes(checkpoint))


def load_checkpoint(out_dir: Path) -> Checkpoint:
    """Read ``out_dir/checkpoint.npz`` (never unpickles).

    Raises
    ------
    ConfigError
        If ``out_dir`` holds no checkpoint.
    DataError
        If the file is not a hospfed checkpoint, is of an unknown version, or
        is inconsistent (its hash does not match its settings, its history
        does not match its round count).

    """
    path = out_dir / CHECKPOINT_FILE
    if not path.is_file():
        raise ConfigError(
            f"no checkpoint in {out_dir} ({CHECKPOINT_FILE} is missing): only a "
            "run that completed at least one round with an output directory "
            "can be resumed"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(archive["meta"].tobytes().decode())
            _check_format(meta)
            counts = meta["arrays"]
            weights = [archive[f"weights_{i}"] for i in range(counts["weights"])]
            optimizer = {
                name: [archive[f"{name}_{i}"] for i in range(count)]
                for name, count in counts.items()
                if name != "weights"
            }
        checkpoint = Checkpoint(
            completed_rounds=int(meta["completed_rounds"]),
            num_rounds=int(meta["num_rounds"]),
            status=str(meta["status"]),
            reason=meta["reason"],
            weights=weights,
            optimizer=optimizer,
            history=RunHistory.from_json(meta["history"]),
            identity=meta["identity"],
            config_hash=str(meta["config_hash"]),
            run=dict(meta.get("run") or {}),
        )
    except DataError:
        raise
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is not a readable hospfed checkpoint: {exc}") from None
    _check_consistent(path, checkpoint)
    return checkpoint


def _check_format(meta: Any) -> None:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"its metadata does not say format {FORMAT!r}")
    if meta.get("version") != VERSION:
        raise DataError(
            f"checkpoint format version {meta.get('version')!r} is not supported "
            f"(this hospfed reads version {VERSION}); use the hospfed that wrote it"
        )


def _check_consistent(path: Path, checkpoint: Checkpoint) -> None:
    if config_hash(checkpoint.identity) != checkpoint.config_hash:
        raise DataError(f"{path}: its settings do not match its config hash")
    if len(checkpoint.history.rounds) != checkpoint.completed_rounds:
        raise DataError(
            f"{path}: {checkpoint.completed_rounds} completed rounds but "
            f"{len(checkpoint.history.rounds)} rounds of metrics"
        )
    if not checkpoint.weights:
        raise DataError(f"{path}: no weights")
