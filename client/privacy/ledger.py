"""The hospital's privacy ledger: every DP-SGD mechanism it ever ran.

The ledger is the hospital's auditable privacy claim. Each entry is one
round's :class:`~hospfed.common.rdp.DpMechanism` (noise
multiplier, sample rate, steps) with the run and round it served, so the
epsilon spent can always be recomputed from it. It is JSON (never pickle),
written atomically (temporary file, fsync, rename, fsync of the directory),
and bound to one dataset and one delta: a ledger for other data, or one that
cannot be read, raises :class:`~hospfed.common.errors.LedgerError` rather
than quietly becoming an empty one.

The lifetime budget is the data steward's decision, made once: by
``hospfed-client budget init`` or by the first DP run, which records the
epsilon it was started with. A later run cannot raise it (a larger epsilon
in the node config is refused); only :meth:`PrivacyLedger.raise_budget`
(``hospfed-client budget raise``) can, and the ledger keeps each raise with
its reason. A round's spending is *reserved* before it trains, under an
exclusive lock on the state directory (:func:`ledger_lock`), in one
read-check-append-write step, so two processes on one state directory can
never both spend the same budget. A reserved round that then fails still
counts: the ledger may overstate what was spent, never understate it.

The ledger is tamper-evident: from format 2 on it carries an HMAC keyed by
a subkey of the hospital's data key (:mod:`~hospfed.client.privacy.records`),
so an edited ledger is an error naming the problem. And deleting it does
not reset the budget: every write also updates a spending receipt beside the
prepared dataset (:mod:`~hospfed.client.privacy.receipt`); a missing ledger,
or one with fewer rounds than its receipt, is refused until the steward
restores it. Format 2 adds ``budget-changes`` and the MAC to format 1;
version 1 files are read and rewritten as version 2 on the next write.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import filelock

from hospfed.client.privacy.receipt import (
    SpendingReceipt,
    read_receipt,
    receipt_path,
    write_receipt,
)
from hospfed.client.privacy.records import (
    LEDGER_FORMAT,
    LEDGER_VERSION,
    MAC_FIELD,
    READABLE_VERSIONS,
    BudgetChange,
    LedgerEntry,
    mac_matches,
    mac_of,
)
from hospfed.common.errors import LedgerError, PrivacyBudgetError
from hospfed.common.files import atomic_write
from hospfed.common.rdp import DpMechanism, check_epsilon, epsilon_spent

LEDGER_FILE = "privacy-ledger.json"
LOCK_FILE = "privacy-ledger.lock"
LOCK_TIMEOUT_SECONDS = 120.0
UNBOUND = ""
"""The dataset of a ledger made by ``budget init``, before its first round."""
_BUDGET_SLACK = 1e-12


@contextmanager
def ledger_lock(state_dir: Path) -> Iterator[None]:
    """Hold the exclusive lock on the ledger in ``state_dir`` (between processes).

    Raises
    ------
    LedgerError
        If another process holds it for longer than two minutes.

    """
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = filelock.FileLock(state_dir / LOCK_FILE, mode=0o600)
    try:
        with lock.acquire(timeout=LOCK_TIMEOUT_SECONDS):
            yield
    except filelock.Timeout:
        raise LedgerError(
            f"privacy ledger in {state_dir} is locked by another process for over "
            f"{LOCK_TIMEOUT_SECONDS:g} s; is another client using this state "
            "directory?"
        ) from None


@dataclass(kw_only=True)
class PrivacyLedger:
    """The persisted DP history of one hospital's dataset.

    Parameters
    ----------
    path : Path
        The ledger file.
    dataset : str
        Fingerprint of the training data the ledger accounts for
        (:data:`UNBOUND` until the first round of a ledger made by ``init``).
    delta : float
        The delta at which epsilon is reported.
    epsilon_budget : float
        The hospital's lifetime epsilon.
    entries : list of LedgerEntry
        History, oldest first.
    budget_changes : list of BudgetChange
        Every raise of the lifetime budget, oldest first.

    """

    path: Path
    dataset: str
    delta: float
    epsilon_budget: float
    entries: list[LedgerEntry] = field(default_factory=list)
    budget_changes: list[BudgetChange] = field(default_factory=list)
    mac_key: bytes | None = field(default=None, repr=False, compare=False)
    receipt_dir: Path | None = field(default=None, repr=False, compare=False)

    @classmethod
    def init(
        cls,
        state_dir: Path,
        *,
        epsilon: float,
        delta: float,
        mac_key: bytes | None = None,
    ) -> PrivacyLedger:
        """Fix a hospital's lifetime budget before its first DP round.

        Raises
        ------
        LedgerError
            If ``state_dir`` already has a ledger (use :meth:`raise_budget`).

        """
        check_epsilon(epsilon)
        with ledger_lock(state_dir):
            path = state_dir / LEDGER_FILE
            if path.exists():
                raise LedgerError(
                    f"{path} already exists: the lifetime budget is fixed; use "
                    "'hospfed-client budget raise' to raise it"
                )
            ledger = cls(
                path=path,
                dataset=UNBOUND,
                delta=delta,
                epsilon_budget=epsilon,
                mac_key=mac_key,
            )
            ledger.save()
        return ledger

    @classmethod
    def open(
        cls,
        state_dir: Path,
        *,
        dataset: str,
        delta: float,
        epsilon_budget: float,
        mac_key: bytes | None = None,
        receipt_dir: Path | None = None,
    ) -> PrivacyLedger:
        """Load the ledger in ``state_dir``, or start one if there is none.

        Callers that change the ledger hold :func:`ledger_lock` around this
        and the write.

        Parameters
        ----------
        state_dir : Path
            The hospital's state directory (created if missing, mode 0700).
        dataset : str
            Fingerprint of the data this client trains on.
        delta : float
            A stored ledger keeps its own delta; a different one is refused,
            since epsilons at two deltas do not add.
        epsilon_budget : float
            The epsilon this run was started with. A new ledger records it as
            the lifetime budget; a stored ledger's budget stands, and a
            larger request is refused.
        mac_key : bytes, optional
            The hospital's ledger key (:func:`ledger_mac_key`): a stored
            ledger must carry a MAC it verifies (format 1 predates MACs), and
            every write is authenticated. Every client passes it; only tests
            and key-less reporting leave it out.
        receipt_dir : Path, optional
            The prepared dataset's directory, where the spending receipt
            lives (needs ``mac_key``).

        Raises
        ------
        LedgerError
            If the file is unreadable, malformed, edited, for another dataset,
            for another delta, missing or behind its dataset's receipt, or
            the request exceeds the lifetime budget.

        """
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = state_dir / LEDGER_FILE
        receipt = _receipt(receipt_dir, dataset, mac_key)
        if not path.exists():
            if receipt is not None and receipt.rounds > 0:
                raise LedgerError(
                    f"no privacy ledger in {state_dir}, but this dataset has run "
                    f"{receipt.rounds} DP rounds (epsilon {receipt.epsilon_spent:.3f} "
                    f"spent; receipt in {receipt_dir}): restore the ledger from "
                    "backup or point state-dir at it; a budget is never reset"
                )
            ledger = cls(
                path=path,
                dataset=dataset,
                delta=delta,
                epsilon_budget=epsilon_budget,
                mac_key=mac_key,
                receipt_dir=receipt_dir,
            )
            ledger.save()
            return ledger
        stored = _read(path, mac_key)
        stored._check_fits(dataset=dataset, delta=delta, epsilon=epsilon_budget)
        if receipt is not None and len(stored.entries) < receipt.rounds:
            raise LedgerError(
                f"privacy ledger {path} records {len(stored.entries)} DP rounds but "
                f"this dataset's receipt records {receipt.rounds}: entries were "
                "removed; restore the ledger from backup"
            )
        stored.dataset = dataset
        stored.receipt_dir = receipt_dir
        return stored

    def _check_fits(self, *, dataset: str, delta: float, epsilon: float) -> None:
        if self.dataset not in (UNBOUND, dataset):
            raise LedgerError(
                f"privacy ledger {self.path} belongs to other data (dataset "
                f"{self.dataset[:12]}, this client trains on {dataset[:12]}); "
                "use a separate state directory per dataset"
            )
        if self.delta != delta:
            raise LedgerError(
                f"privacy ledger {self.path} accounts at delta {self.delta:g} but "
                f"the node config asks for {delta:g}; keep delta fixed for a "
                "dataset's life"
            )
        if epsilon > self.epsilon_budget * (1 + _BUDGET_SLACK):
            raise LedgerError(
                f"this hospital's lifetime privacy budget is epsilon "
                f"{self.epsilon_budget:g} ({self.path}); a run cannot raise it to "
                f"{epsilon:g}. The data steward can: hospfed-client budget raise "
                f"--state-dir {self.path.parent} --epsilon {epsilon:g} --reason TEXT"
            )

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

    def authorise(
        self, mechanism: DpMechanism, *, server_round: int, cap: float | None = None
    ) -> float:
        """Check a round fits the budget; return the epsilon it would leave spent.

        Parameters
        ----------
        mechanism : DpMechanism
            The round to run.
        server_round : int
            Its round number (for the message).
        cap : float, optional
            A run's own limit below the lifetime budget.

        Raises
        ------
        PrivacyBudgetError
            If running ``mechanism`` would push spending past the budget.

        """
        budget = self.epsilon_budget if cap is None else min(cap, self.epsilon_budget)
        after = epsilon_spent([*self.history, mechanism], self.delta)
        if after > budget or math.isnan(after):
            raise PrivacyBudgetError(
                f"privacy budget: round {server_round} would raise epsilon from "
                f"{self.spent():.3f} to {after:.3f}, over this hospital's budget "
                f"of {budget:g} (delta {self.delta:g}); it declines the round"
            )
        return after

    def reserve(
        self,
        mechanism: DpMechanism,
        *,
        run: str,
        server_round: int,
        clip_norm: float,
        cap: float | None = None,
    ) -> float:
        """Authorise a round and record it, persisted before returning.

        Hold :func:`ledger_lock` from reading the ledger to this call.

        Returns
        -------
        float
            The epsilon spent once the round has run.

        Raises
        ------
        PrivacyBudgetError
            If the round does not fit; nothing is recorded.

        """
        after = self.authorise(mechanism, server_round=server_round, cap=cap)
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
        return after

    def raise_budget(self, epsilon: float, *, reason: str) -> BudgetChange:
        """Raise the lifetime budget and record why (the data steward's act).

        Hold :func:`ledger_lock` from reading the ledger to this call.

        Raises
        ------
        LedgerError
            If ``epsilon`` is not above the current budget or no reason is given.

        """
        check_epsilon(epsilon)
        if not reason.strip():
            raise LedgerError("a budget raise needs a reason (--reason TEXT)")
        if epsilon <= self.epsilon_budget:
            raise LedgerError(
                f"the lifetime budget is already epsilon {self.epsilon_budget:g}; "
                f"{epsilon:g} is not a raise (the budget never goes down)"
            )
        change = BudgetChange(
            epsilon=epsilon,
            previous=self.epsilon_budget,
            reason=reason.strip(),
            changed_at=time.time(),
        )
        self.budget_changes.append(change)
        self.epsilon_budget = epsilon
        self.save()
        return change

    def save(self) -> None:
        """Write the ledger atomically (mode 0600)."""
        document = {
            "format": LEDGER_FORMAT,
            "version": LEDGER_VERSION,
            "dataset": self.dataset,
            "delta": self.delta,
            "epsilon-budget": self.epsilon_budget,
            "accountant": "rdp (opacus.accountants.analysis.rdp)",
            "budget-changes": [change.to_json() for change in self.budget_changes],
            "entries": [entry.to_json() for entry in self.entries],
        }
        if self.mac_key is not None:
            document[MAC_FIELD] = mac_of(document, self.mac_key)
        data = (json.dumps(document, indent=2) + "\n").encode()
        atomic_write(self.path, data, mode=0o600)
        if self.receipt_dir is not None and self.mac_key is not None:
            self._write_receipt()

    def _write_receipt(self) -> None:
        assert self.receipt_dir is not None and self.mac_key is not None
        receipt = SpendingReceipt(
            dataset=self.dataset,
            rounds=len(self.entries),
            epsilon_spent=self.spent(),
            delta=self.delta,
            updated_at=time.time(),
        )
        path = receipt_path(self.receipt_dir, self.dataset)
        write_receipt(path, receipt, self.mac_key)


def _receipt(
    receipt_dir: Path | None, dataset: str, mac_key: bytes | None
) -> SpendingReceipt | None:
    if receipt_dir is None:
        return None
    if mac_key is None:
        raise LedgerError("a spending receipt needs the hospital's ledger key")
    return read_receipt(receipt_path(receipt_dir, dataset), mac_key)


def _read(path: Path, mac_key: bytes | None = None) -> PrivacyLedger:
    try:
        document = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LedgerError(
            f"privacy ledger {path} cannot be read ({exc}); it is never reset "
            "automatically: restore it from backup"
        ) from exc
    if not isinstance(document, dict) or document.get("format") != LEDGER_FORMAT:
        raise LedgerError(f"{path} is not a hospfed privacy ledger")
    if document.get("version") not in READABLE_VERSIONS:
        raise LedgerError(
            f"privacy ledger {path} has version {document.get('version')!r}; "
            f"this hospfed reads versions {', '.join(map(str, READABLE_VERSIONS))}"
        )
    if mac_key is not None and document["version"] > 1:
        if MAC_FIELD not in document:
            raise LedgerError(
                f"privacy ledger {path} carries no MAC: it was not written by a "
                "hospfed client with this hospital's key; restore it from backup"
            )
        if not mac_matches(document, mac_key):
            raise LedgerError(
                f"privacy ledger {path} was edited outside hospfed or belongs to "
                "another key (its MAC does not match); restore it from backup"
            )
    try:
        return PrivacyLedger(
            path=path,
            dataset=str(document["dataset"]),
            delta=float(document["delta"]),
            epsilon_budget=float(document["epsilon-budget"]),
            entries=[LedgerEntry.from_json(raw) for raw in document["entries"]],
            budget_changes=[
                BudgetChange.from_json(raw)
                for raw in document.get("budget-changes", [])
            ],
            mac_key=mac_key,
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


def load_ledger(state_dir: Path, *, mac_key: bytes | None = None) -> PrivacyLedger:
    """Read an existing ledger (``hospfed-client budget``), verified if keyed."""
    return _read(find_ledger(state_dir), mac_key)
