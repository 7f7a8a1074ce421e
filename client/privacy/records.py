"""What a privacy ledger file holds, and how it is authenticated.

A ledger file is JSON (never pickle): its header (format, version, the
dataset fingerprint, delta, the lifetime budget), every budget raise
(:class:`BudgetChange`) and every round reserved (:class:`LedgerEntry`).
From format 2 on, it carries an HMAC-SHA256 over its canonical JSON (keys
sorted, no spaces), keyed by a subkey of the hospital's data key
(:func:`ledger_mac_key`): an entry removed, a budget edited or a whole
ledger rewritten by anyone without the key is detected. Format 1 (no MAC,
no budget raises) is read and rewritten as format 2.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from hospfed.client.vault import KeySource, hospital_key
from hospfed.common.rdp import DpMechanism

LEDGER_FORMAT = "hospfed-privacy-ledger"
LEDGER_VERSION = 2
READABLE_VERSIONS = (1, 2)
MAC_FIELD = "mac"
_MAC_PURPOSE = "privacy/ledger-mac"


def ledger_mac_key(source: KeySource) -> bytes:
    """The hospital's key for authenticating its ledger and spending receipt."""
    return hospital_key(source).derive(_MAC_PURPOSE)


def canonical(document: dict[str, Any]) -> bytes:
    """The bytes a MAC covers: ``document`` without its MAC, keys sorted."""
    unsigned = {k: v for k, v in document.items() if k != MAC_FIELD}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()


def mac_of(document: dict[str, Any], key: bytes) -> str:
    """HMAC-SHA256 of ``document``'s canonical bytes, as hex."""
    return hmac.new(key, canonical(document), hashlib.sha256).hexdigest()


def mac_matches(document: dict[str, Any], key: bytes) -> bool:
    """Whether ``document`` carries a MAC that ``key`` verifies."""
    stored = document.get(MAC_FIELD)
    return isinstance(stored, str) and hmac.compare_digest(
        stored, mac_of(document, key)
    )


@dataclass(frozen=True, kw_only=True)
class LedgerEntry:
    """One round of DP-SGD at this hospital.

    Parameters
    ----------
    mechanism : DpMechanism
        What ran.
    run : str
        Which federation run asked for it.
    server_round : int
        The round.
    clip_norm : float
        Per-example gradient bound used.
    recorded_at : float
        Unix time the round was reserved (before it trained).

    """

    mechanism: DpMechanism
    run: str
    server_round: int
    clip_norm: float
    recorded_at: float

    def to_json(self) -> dict[str, Any]:
        """Return the entry as JSON-ready data."""
        return {
            "noise-multiplier": self.mechanism.noise_multiplier,
            "sample-rate": self.mechanism.sample_rate,
            "steps": self.mechanism.steps,
            "run": self.run,
            "round": self.server_round,
            "clip-norm": self.clip_norm,
            "recorded-at": self.recorded_at,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> LedgerEntry:
        """Read an entry; raises KeyError/TypeError/ValueError when malformed."""
        return cls(
            mechanism=DpMechanism(
                noise_multiplier=float(raw["noise-multiplier"]),
                sample_rate=float(raw["sample-rate"]),
                steps=int(raw["steps"]),
            ),
            run=str(raw["run"]),
            server_round=int(raw["round"]),
            clip_norm=float(raw["clip-norm"]),
            recorded_at=float(raw["recorded-at"]),
        )


@dataclass(frozen=True, kw_only=True)
class BudgetChange:
    """A raise of the lifetime budget, decided by the data steward.

    Parameters
    ----------
    epsilon : float
        The new lifetime budget.
    previous : float
        The budget before.
    reason : str
        Why, as the steward wrote it.
    changed_at : float
        Unix time.

    """

    epsilon: float
    previous: float
    reason: str
    changed_at: float

    def to_json(self) -> dict[str, Any]:
        """Return the change as JSON-ready data."""
        return {
            "epsilon": self.epsilon,
            "previous": self.previous,
            "reason": self.reason,
            "changed-at": self.changed_at,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> BudgetChange:
        """Read a change; raises KeyError/TypeError/ValueError when malformed."""
        return cls(
            epsilon=float(raw["epsilon"]),
            previous=float(raw["previous"]),
            reason=str(raw["reason"]),
            changed_at=float(raw["changed-at"]),
        )
