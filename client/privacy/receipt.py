"""The spending receipt: a second record of a dataset's DP spending.

Deleting a hospital's ledger must not reset its budget. So every time the
ledger is written, a small receipt beside the prepared dataset (in its
directory, named after the dataset's fingerprint) records how many DP rounds
that dataset has run and the epsilon spent, authenticated with the same key
as the ledger. Opening the ledger checks it against the receipt: a missing
ledger for a dataset that has trained with DP, or a ledger with fewer rounds
than the receipt records, is refused until the data steward restores the
ledger. Deleting one file no longer erases the spending; deleting both takes
someone who means it, and the audit trail is the place to catch that.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hospfed.client.privacy.records import MAC_FIELD, mac_matches, mac_of
from hospfed.common.errors import LedgerError
from hospfed.common.files import atomic_write

RECEIPT_FORMAT = "hospfed-privacy-receipt"
RECEIPT_VERSION = 1


def receipt_path(data_dir: Path, dataset: str) -> Path:
    """Where the receipt of dataset ``dataset`` (a fingerprint) lives."""
    return data_dir / f".hospfed-privacy-{dataset[:16]}.json"


@dataclass(frozen=True, kw_only=True)
class SpendingReceipt:
    """How much a dataset has spent, as of the last ledger write.

    Parameters
    ----------
    dataset : str
        Fingerprint of the training data.
    rounds : int
        DP rounds recorded in the ledger.
    epsilon_spent : float
        Epsilon spent at ``delta``.
    delta : float
        The ledger's delta.
    updated_at : float
        Unix time of the ledger write.

    """

    dataset: str
    rounds: int
    epsilon_spent: float
    delta: float
    updated_at: float

    def to_json(self) -> dict[str, Any]:
        """Return the receipt as JSON-ready data (without its MAC)."""
        return {
            "format": RECEIPT_FORMAT,
            "version": RECEIPT_VERSION,
            "dataset": self.dataset,
            "rounds": self.rounds,
            "epsilon-spent": self.epsilon_spent,
            "delta": self.delta,
            "updated-at": self.updated_at,
        }


def write_receipt(path: Path, receipt: SpendingReceipt, mac_key: bytes) -> None:
    """Write ``receipt`` atomically (mode 0600), authenticated with ``mac_key``."""
    document = receipt.to_json()
    document[MAC_FIELD] = mac_of(document, mac_key)
    atomic_write(path, (json.dumps(document, indent=2) + "\n").encode(), mode=0o600)


def read_receipt(path: Path, mac_key: bytes) -> SpendingReceipt | None:
    """Read the receipt at ``path``; None if there is none.

    Raises
    ------
    LedgerError
        If it cannot be read, is malformed, or its MAC does not verify.

    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LedgerError(f"privacy receipt {path} cannot be read ({exc})") from exc
    try:
        document = json.loads(raw)
        if not isinstance(document, dict) or document["format"] != RECEIPT_FORMAT:
            raise ValueError("not a hospfed privacy receipt")
    except (ValueError, KeyError, UnicodeDecodeError) as exc:
        raise LedgerError(f"privacy receipt {path} is malformed ({exc})") from None
    if not mac_matches(document, mac_key):
        raise LedgerError(
            f"privacy receipt {path} was altered or made with another key (its MAC "
            "does not match); restore it from backup"
        )
    return SpendingReceipt(
        dataset=str(document["dataset"]),
        rounds=int(document["rounds"]),
        epsilon_spent=float(document["epsilon-spent"]),
        delta=float(document["delta"]),
        updated_at=float(document["updated-at"]),
    )
