"""The hospital's audit log: what left the building, verifiable offline.

Every reply the hospital sends to the coordinator is recorded, before it is
sent, as one line of JSON in ``audit.jsonl`` in the hospital's state
directory: the run, the round, the message type, each array's SHA-256, byte
size, shape and dtype, the metric names and values, the number of examples
and the epsilon spent. Each entry carries the hash of the previous one
(``prev``) and its own (``hash``, SHA-256 of its canonical JSON), so
:func:`verify_audit_log` detects an entry that was edited, deleted, inserted
or moved; ``audit.head.json`` (written atomically after each append) records
the last entry, so a log cut short is detected too. Appends are made under an
exclusive lock (several processes may answer for one hospital) and fsynced.

The log holds no patient value: arrays appear only as hashes and sizes, and
metrics are the whitelisted aggregates the hospital sends anyway.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock
import numpy as np

from hospfed.common.errors import DataError
from hospfed.common.files import atomic_write

__all__ = [
    "AUDIT_FILE",
    "AuditProblem",
    "append_audit_entry",
    "read_audit_log",
    "summarise_audit_log",
    "verify_audit_log",
]

AUDIT_FILE = "audit.jsonl"
HEAD_FILE = "audit.head.json"
LOCK_FILE = "audit.lock"
AUDIT_VERSION = 1
GENESIS = "0" * 64
_LOCK_TIMEOUT = 120.0


@dataclass(frozen=True)
class AuditProblem:
    """One thing :func:`verify_audit_log` found wrong (line 1 is the first)."""

    line: int
    problem: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.problem}"


def _entry_hash(entry: Mapping[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _array_record(array: np.ndarray) -> dict[str, Any]:
    data = np.ascontiguousarray(array)
    return {
        "sha256": hashlib.sha256(data.tobytes()).hexdigest(),
        "bytes": int(data.nbytes),
        "shape": list(data.shape),
        "dtype": str(data.dtype),
    }


def append_audit_entry(
    state_dir: Path,
    *,
    run: str,
    server_round: int,
    message_type: str,
    arrays: Sequence[np.ndarray],
    metrics: Mapping[str, bool | int | float | str | bytes],
    num_examples: int,
    epsilon: float | None,
) -> dict[str, Any]:
    """Record one reply before it is sent; return the entry written.

    Raises
    ------
    DataError
        If the existing log is broken (it is never extended past a break).

    """
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = filelock.FileLock(state_dir / LOCK_FILE, mode=0o600)
    with lock.acquire(timeout=_LOCK_TIMEOUT):
        head = _read_head(state_dir)
        entry: dict[str, Any] = {
            "v": AUDIT_VERSION,
            "seq": 0 if head is None else head["seq"] + 1,
            "time": time.time(),
            "run": run,
            "round": server_round,
            "type": message_type,
            "arrays": [_array_record(a) for a in arrays],
            "num-examples": num_examples,
            "metrics": {k: _json_scalar(v) for k, v in sorted(metrics.items())},
            "epsilon": epsilon,
            "prev": GENESIS if head is None else head["hash"],
        }
        entry["hash"] = _entry_hash(entry)
        _append_line(state_dir / AUDIT_FILE, entry)
        head_doc = {"seq": entry["seq"], "hash": entry["hash"]}
        atomic_write(state_dir / HEAD_FILE, json.dumps(head_doc).encode(), mode=0o600)
    return entry


def _json_scalar(value: bool | int | float | str | bytes) -> Any:
    if isinstance(value, bytes):
        return {"sha256": hashlib.sha256(value).hexdigest(), "bytes": len(value)}
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)  # NaN and inf are not JSON
    return value


def _append_line(path: Path, entry: Mapping[str, Any]) -> None:
    line = (json.dumps(entry, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_head(state_dir: Path) -> dict[str, Any] | None:
    path = state_dir / HEAD_FILE
    if not path.exists():
        if (state_dir / AUDIT_FILE).exists() and (
            state_dir / AUDIT_FILE
        ).stat().st_size:
            raise DataError(
                f"audit log in {state_dir} has entries but no {HEAD_FILE}: it was "
                "altered; run 'hospfed-client audit verify' and restore it"
            )
        return None
    try:
        head = json.loads(path.read_text())
        return {"seq": int(head["seq"]), "hash": str(head["hash"])}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"audit head {path} cannot be read ({exc})") from None


def read_audit_log(state_dir: Path) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """Yield (line number, entry or None if the line is not JSON) in order."""
    path = state_dir / AUDIT_FILE
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                entry = json.loads(raw)
            except ValueError:
                yield number, None
                continue
            yield number, entry if isinstance(entry, dict) else None


def verify_audit_log(state_dir: Path) -> list[AuditProblem]:
    """Check the whole chain; return every problem found (empty: intact).

    Raises
    ------
    DataError
        If there is no audit log in ``state_dir``.

    """
    if not (state_dir / AUDIT_FILE).exists():
        raise DataError(f"no audit log in {state_dir} (check --state-dir)")
    problems: list[AuditProblem] = []
    prev, expected_seq, last = GENESIS, 0, 0
    for number, entry in read_audit_log(state_dir):
        last = number
        if entry is None:
            problems.append(AuditProblem(number, "not a JSON object (damaged)"))
            continue
        if entry.get("hash") != _entry_hash(entry):
            problems.append(AuditProblem(number, "its content was edited"))
        if entry.get("prev") != prev:
            problems.append(
                AuditProblem(
                    number,
                    "does not follow the entry before it "
                    "(one was deleted, inserted or moved)",
                )
            )
        if entry.get("seq") != expected_seq:
            problems.append(
                AuditProblem(
                    number, f"sequence {entry.get('seq')}, expected {expected_seq}"
                )
            )
        prev = str(entry.get("hash"))
        expected_seq = int(entry.get("seq", expected_seq)) + 1
    problems += _head_problems(state_dir, prev, expected_seq - 1, last)
    return problems


def _head_problems(
    state_dir: Path, last_hash: str, last_seq: int, last_line: int
) -> list[AuditProblem]:
    try:
        head = _read_head(state_dir)
    except DataError as exc:
        return [AuditProblem(last_line, str(exc))]
    if head is None:
        return []
    if head["hash"] != last_hash or head["seq"] != last_seq:
        return [
            AuditProblem(
                last_line,
                f"the log ends at entry {last_seq} but its head records entry "
                f"{head['seq']}: entries were removed from the end",
            )
        ]
    return []


def summarise_audit_log(state_dir: Path) -> list[dict[str, Any]]:
    """Per run: messages sent, rounds, bytes of arrays and the last epsilon."""
    runs: dict[str, dict[str, Any]] = {}
    for _, entry in read_audit_log(state_dir):
        if entry is None:
            continue
        run = runs.setdefault(
            str(entry.get("run")),
            {
                "run": str(entry.get("run")),
                "messages": 0,
                "rounds": set(),
                "bytes": 0,
                "epsilon": None,
            },
        )
        run["messages"] += 1
        run["rounds"].add(entry.get("round"))
        run["bytes"] += sum(int(a.get("bytes", 0)) for a in entry.get("arrays", []))
        if entry.get("epsilon") is not None:
            run["epsilon"] = entry["epsilon"]
    return [dict(r, rounds=len(r["rounds"])) for r in runs.values()]
