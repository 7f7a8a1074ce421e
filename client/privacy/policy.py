"""The hospital decides what each round may cost in privacy.

The coordinator asks for rounds; :class:`HospitalPrivacy` turns a round's
:class:`~hospfed.common.training.TrainPlan` into the DP-SGD mechanism the
hospital will run (its own clip norm and noise, Poisson sampling at
``1 / ceil(n / batch)``), checks it against the hospital's ledger and budget
before any training, and records it after. When no noise multiplier is
configured it is derived once from the budget: the smallest noise that lets
``dp-rounds`` rounds of this plan fit in (epsilon, delta).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from hospfed.client.privacy.accounting import (
    noise_multiplier_for,
    poisson_sample_rate,
)
from hospfed.client.privacy.ledger import PrivacyLedger, ledger_lock
from hospfed.client.privacy.settings import DpStep, PrivacySettings
from hospfed.common.errors import PrivacyBudgetError
from hospfed.common.rdp import DpMechanism, epsilon_spent
from hospfed.common.training import TrainPlan

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class PrivateRound:
    """One authorised round: what the backend runs and what the ledger records."""

    step: DpStep
    mechanism: DpMechanism
    epsilon_after: float


@dataclass(kw_only=True)
class HospitalPrivacy:
    """A hospital's DP policy over its ledger.

    Parameters
    ----------
    settings : PrivacySettings
        Budget, clip norm, noise (fixed or derived).
    state_dir : Path
        Directory of the privacy ledger.
    dataset : str
        Fingerprint of the training data.
    mac_key : bytes, optional
        The hospital's ledger key (every client gives it; tests may not).
    receipt_dir : Path, optional
        The prepared dataset's directory, for the spending receipt.

    """

    settings: PrivacySettings
    state_dir: Path
    dataset: str
    mac_key: bytes | None = field(default=None, repr=False)
    receipt_dir: Path | None = None
    _noise: dict[tuple[float, int, str, int, float], float] = field(
        default_factory=dict
    )

    def ledger(self) -> PrivacyLedger:
        """Open the ledger (re-read every time: the file is the truth)."""
        return PrivacyLedger.open(
            self.state_dir,
            dataset=self.dataset,
            delta=self.settings.delta,
            epsilon_budget=self.settings.epsilon,
            mac_key=self.mac_key,
            receipt_dir=self.receipt_dir,
        )

    def authorise(
        self,
        plan: TrainPlan,
        *,
        num_examples: int,
        run: str,
        server_round: int,
        noise_steps: int | None = None,
    ) -> PrivateRound:
        """Reserve this round's spending in the ledger, or refuse it.

        ``noise_steps``: derive the noise as for rounds of this many local
        steps (a personalisation's steps differ from the run's rounds, and
        run with the noise the run's rounds run with).

        Reading the ledger, deriving the noise, checking the budget and
        recording the round happen under the ledger's lock, as one step: two
        processes on one state directory cannot both spend the same budget.
        The round is recorded before it trains; one that then fails still
        counts (the ledger never understates what was spent).

        Raises
        ------
        PrivacyBudgetError
            If it does not fit; nothing has been trained or recorded.

        """
        sample_rate = poisson_sample_rate(num_examples, plan.batch_size)
        with ledger_lock(self.state_dir):
            ledger = self.ledger()
            noise = self.noise_multiplier(
                sample_rate, noise_steps or plan.local_steps, ledger=ledger, run=run
            )
            mechanism = DpMechanism(
                noise_multiplier=noise, sample_rate=sample_rate, steps=plan.local_steps
            )
            after = ledger.reserve(
                mechanism,
                run=run,
                server_round=server_round,
                clip_norm=self.settings.clip_norm,
                cap=self.settings.epsilon,
            )
        logger.info(
            "privacy: round %s reserved; epsilon %.3f of %g (delta %g)",
            server_round,
            after,
            min(self.settings.epsilon, ledger.epsilon_budget),
            self.settings.delta,
        )
        step = DpStep(
            noise_multiplier=noise,
            clip_norm=self.settings.clip_norm,
            sample_rate=sample_rate,
            noise_seed=self.settings.noise_seed,
        )
        return PrivateRound(step=step, mechanism=mechanism, epsilon_after=after)

    def noise_multiplier(
        self, sample_rate: float, local_steps: int, *, ledger: PrivacyLedger, run: str
    ) -> float:
        """The configured noise, or the noise derived from the budget that remains.

        Derived noise is the smallest that lets ``dp-rounds`` rounds of this
        plan in run ``run`` fit, on top of everything spent before the run
        began (the ledger's entries of other runs), in the smaller of the
        run's epsilon and the lifetime budget. It depends only on the ledger,
        so every message of a run derives the same noise.

        Raises
        ------
        PrivacyBudgetError
            If earlier runs have already spent the budget.

        """
        if self.settings.noise_multiplier is not None:
            return self.settings.noise_multiplier
        before = [e.mechanism for e in ledger.entries if e.run != run]
        budget = min(self.settings.epsilon, ledger.epsilon_budget)
        key = (sample_rate, local_steps, run, len(before), budget)
        if key not in self._noise:
            spent = epsilon_spent(before, ledger.delta)
            if spent >= budget:
                raise PrivacyBudgetError(
                    f"privacy budget: epsilon {spent:.3f} of {budget:g} was spent "
                    f"before run {run}; this hospital declines it"
                )
            self._noise[key] = noise_multiplier_for(
                epsilon=budget,
                delta=ledger.delta,
                sample_rate=sample_rate,
                steps=local_steps * self.settings.planned_rounds,
                history=before,
            )
        return self._noise[key]
