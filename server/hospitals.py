"""The consortium's register of hospitals: ``admit``, ``revoke``, ``hospitals``.

This module owns ``hospitals.json`` in the daemon's state directory: for
each hospital the coordinator admitted, its name, the node id Flower gave
its key, the key's SHA-256 fingerprint (what the coordinator reads out to
the hospital over the phone to check the key is theirs), when it was
admitted and, if so, revoked. Flower's SuperLink keeps the keys themselves
(``flwr supernode register`` / ``unregister``); this file gives them names.
Written atomically under a lock.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import filelock
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hospfed.common.errors import ConfigError, KeyFileError
from hospfed.common.files import atomic_write
from hospfed.server.certs import key_fingerprint
from hospfed.server.daemon import StateDir

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def file_fingerprint(path: Path) -> str:
    """The fingerprint of the OpenSSH EC public key in ``path``.

    Raises
    ------
    KeyFileError
        If the file is not an EC public key in OpenSSH format.

    """
    try:
        key = serialization.load_ssh_public_key(path.read_bytes().strip())
    except (ValueError, TypeError, IndexError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(
            f"{path} is not an OpenSSH public key: give the node.pub that "
            "`hospfed-client node-key` wrote"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise KeyFileError(
            f"{path}: a node key must be an EC key (hospfed-client node-key)"
        )
    return key_fingerprint(key)


def _load(state: StateDir) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(state.hospitals.read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{state.hospitals} is corrupt ({exc}); nothing was changed"
        ) from exc
    return dict(data.get("hospitals", {}))


def _save(state: StateDir, hospitals: dict[str, dict[str, Any]]) -> None:
    text = json.dumps({"format": 1, "hospitals": hospitals}, indent=2, sort_keys=True)
    atomic_write(state.hospitals, text.encode(), mode=0o600)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def admit(state: StateDir, name: str, public_key: Path) -> dict[str, Any]:
    """Register a hospital's node key under ``name``; return its entry.

    Raises
    ------
    ConfigError
        If the name is malformed or taken by a hospital not revoked, or the
        key is admitted under another name.

    """
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"hospital name {name!r}: use lowercase letters, digits, '-' and '_'"
        )
    fingerprint = file_fingerprint(public_key)
    control = state.control()
    with filelock.FileLock(f"{state.hospitals}.lock", mode=0o600):
        hospitals = _load(state)
        if name in hospitals and not hospitals[name].get("revoked"):
            raise ConfigError(
                f"{name} is already admitted; revoke it first to change its key"
            )
        for other, entry in hospitals.items():
            if entry["fingerprint"] == fingerprint and not entry.get("revoked"):
                raise ConfigError(f"this key is already admitted as {other}")
        node_id = control.register(public_key, name)
        hospitals[name] = {
            "node_id": node_id,
            "fingerprint": fingerprint,
            "admitted": _now(),
        }
        _save(state, hospitals)
        return hospitals[name]


def revoke(state: StateDir, name: str) -> dict[str, Any]:
    """Unregister a hospital's key: it can no longer connect. Return its entry."""
    control = state.control()
    with filelock.FileLock(f"{state.hospitals}.lock", mode=0o600):
        hospitals = _load(state)
        entry = hospitals.get(name)
        if entry is None or entry.get("revoked"):
            raise ConfigError(
                f"{name} is not an admitted hospital (see `hospfed-server hospitals`)"
            )
        control.unregister(entry["node_id"])
        entry["revoked"] = _now()
        _save(state, hospitals)
        return entry


def listing(state: StateDir, *, live: bool = True) -> list[dict[str, Any]]:
    """Every hospital ever admitted, with its status from the SuperLink.

    Parameters
    ----------
    state : StateDir
        The daemon's state.
    live : bool
        Ask the running daemon who is online (else status is "unknown").

    """
    hospitals = _load(state)
    nodes = {str(n["node-id"]): n for n in state.control().nodes()} if live else {}
    rows = []
    for name, entry in sorted(hospitals.items()):
        node = nodes.get(entry["node_id"], {})
        status = "revoked" if entry.get("revoked") else node.get("status", "unknown")
        last_seen = (
            node.get("offline-at") if status == "offline" else node.get("online-at")
        )
        rows.append(
            {
                "hospital": name,
                "status": status,
                "last_seen": None if last_seen in (None, "N/A") else last_seen,
                "node_id": entry["node_id"],
                "fingerprint": entry["fingerprint"],
                "admitted": entry["admitted"],
                "revoked": entry.get("revoked"),
            }
        )
    return rows
