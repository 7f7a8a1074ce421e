"""The hospital's privacy ledger: every DP-SGD mechanism it ever ran.

The ledger is the hospital's auditable privacy claim. Each entry is one
round's :class:`~hospfed.client.privacy.accounting.DpMechanism` (noise multiplier,
sample rate, steps) with the run and round it served, so the epsilon spent
can always be recomputed from it. It is JSON (never pickle), written
atomically after every round, and bound to one dataset: a ledger for other
data, or a ledger that cannot be read, raises :class:`LedgerError` rather
than quietly becoming an empty one. Restarting the client or starting a
new run therefore never resets the epsilon spent.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hospfed.client.privacy.accounting import DpMechanism, epsilon_spent
from hospfed.common.errors import LedgerError, PrivacyBudgetError
from hospfed.common.files import atomic_write

LEDGER_FORMAT = "hospfed-privacy-ledger"
LEDGER_VERSION = 1
LEDGER_FILE = "privacy-ledger.json"


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
        Unix time the entry was written.

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


@dataclass(kw_only=True)
class PrivacyLedger:
    """The persisted DP history of one hospital's dataset.

    Parameters
    ----------
    path : Path
        The ledger file.
    dataset : str
        Fingerprint of the training data the ledger accounts for.
    delta : float
        The delta at which epsilon is reported.
    epsilon_budget : float
        The hospital's total epsilon.
    entries : list of LedgerEntry
        History, oldest first.

    """

    path: Path
    dataset: str
    delta: float
    epsilon_budget: float
    entries: list[LedgerEntry] = field(default_factory=list)

    @classmethod
    def open(
        cls, state_dir: Path, *, dataset: str, delta: float, epsilon_budget: float
    ) -> PrivacyLedger:
        """Load the ledger in ``state_dir``, or start one if there is none.

        Parameters
        ----------
        state_dir : Path
            The hospital's state directory (created if missing, mode 0700).
        dataset : str
            Fingerprint of the data this client trains on.
        delta, epsilon_budget : float
            The hospital's budget. A stored ledger keeps its own delta; a
            different one is refused, since epsilons at two deltas do not add.

        Raises
        ------
        LedgerError
            If the file is unreadable, malformed, for another dataset or
            for another delta.

        """
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = state_dir / LEDGER_FILE
        if not path.exists():
            ledger = cls(
                path=path, dataset=dataset, delta=delta, epsilon_budget=epsilon_budget
            )
            ledger.save()
            return ledger
        stored = _read(path)
        if stored.dataset != dataset:
            raise LedgerError(
                f"privacy ledger {path} belongs to other data (dataset "
                f"{stored.dataset[:12]}, this client trains on {dataset[:12]}); "
                "use a separate state directory per dataset"
            )
        if stored.delta != delta:
            raise LedgerError(
                f"privacy ledger {path} accounts at delta {stored.delta:g} but "
                f"the node config asks for {delta:g}; keep delta fixed for a "
                "dataset's life"
            )
        stored.epsilon_budget = epsilon_budget
        return stored

    @property
    def history(self) -> list[DpMechanism]:
        """Every mechanism run, oldest first."""
        return [entry.mechanism for entry in self.entries]

    def spent(self) -> float:
        """Epsilon spent so far, at the ledger's delta."""
        return epsilon_spent(self.history, self.delta)

    def remaining(self) -> float:
        """Epsilon left before the budget is reached (never below 0)."""
        return max(0.0, self.epsilon_budget - self.spent())

    def authorise(self, mechanism: DpMechanism, *, server_round: int) -> float:
        """Check a round fits the budget; return the epsilon it would leave spent.

        Raises
        ------
        PrivacyBudgetError
            If running ``mechanism`` would push spending past the budget.

        """
        after = epsilon_spent([*self.history, mechanism], self.delta)
        if after > self.epsilon_budget or math.isnan(after):
            raise PrivacyBudgetError(
                f"privacy budget: round {server_round} would raise epsilon from "
                f"{self.spent():.3f} to {after:.3f}, over this hospital's budget "
                f"of {self.epsilon_budget:g} (delta {self.delta:g}); it declines "
                "the round"
            )
        return after

    def record(
        self,
        mechanism: DpMechanism,
        *,
        run: str,
        server_round: int,
        clip_norm: float,
    ) -> None:
        """Append a round and persist the ledger atomically before returning."""
        entry = LedgerEntry(
            mechanism=mechanism,
            run=run,
            server_round=server_round,
            clip_norm=clip_norm,
            recorded_at=time.time(),
        )
        self.entries.append(entry)
        try:
            self.save()
        except BaseException:
            self.entries.pop()
            raise

    def save(self) -> None:
        """Write the ledger atomically (mode 0600)."""
        document = {
            "format": LEDGER_FORMAT,
            "version": LEDGER_VERSION,
            "dataset": self.dataset,
            "delta": self.delta,
            "epsilon-budget": self.epsilon_budget,
            "accountant": "rdp (opacus.accountants.analysis.rdp)",
            "entries": [entry.to_json() for entry in self.entries],
        }
        data = (json.dumps(document, indent=2) + "\n").encode()
        atomic_write(self.path, data, mode=0o600)


def _read(path: Path) -> PrivacyLedger:
    try:
        document = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LedgerError(
            f"privacy ledger {path} cannot be read ({exc}); it is never reset "
            "automatically: restore it from backup"
        ) from exc
    if not isinstance(document, dict) or document.get("format") != LEDGER_FORMAT:
        raise LedgerError(f"{path} is not a hospfed privacy ledger")
    if document.get("version") != LEDGER_VERSION:
        raise LedgerError(
            f"privacy ledger {path} has version {document.get('version')!r}; "
            f"this hospfed reads version {LEDGER_VERSION}"
        )
    try:
        return PrivacyLedger(
            path=path,
            dataset=str(document["dataset"]),
            delta=float(document["delta"]),
            epsilon_budget=float(document["epsilon-budget"]),
            entries=[LedgerEntry.from_json(raw) for raw in document["entries"]],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LedgerError(
            f"privacy ledger {path} is malformed ({exc!r}); it is never reset "
            "automatically: restore it from backup"
        ) from exc


def find_ledger(state_dir: Path) -> Path:
    """Return the ledger path in ``state_dir``; raise LedgerError if absent."""
    path = state_dir / LEDGER_FILE
    if not path.is_file():
        raise LedgerError(
            f"no privacy ledger in {state_dir}: the client has not trained with "
            "DP there yet (check --state-dir)"
        )
    if not os.access(path, os.R_OK):
        raise LedgerError(f"privacy ledger {path} is not readable by this user")
    return path


def load_ledger(state_dir: Path) -> PrivacyLedger:
    """Read an existing ledger for reporting (``hospfed-client budget``).

    Its budget is the one the client last ran with.
    """
    return _read(find_ledger(state_dir))
