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
    DpMechanism,
    noise_multiplier_for,
    poisson_sample_rate,
)
from hospfed.client.privacy.ledger import PrivacyLedger
from hospfed.client.privacy.settings import DpStep, PrivacySettings
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

    """

    settings: PrivacySettings
    state_dir: Path
    dataset: str
    _noise: dict[tuple[float, int], float] = field(default_factory=dict)

    def ledger(self) -> PrivacyLedger:
        """Open the ledger (re-read every time: the file is the truth)."""
        return PrivacyLedger.open(
            self.state_dir,
            dataset=self.dataset,
            delta=self.settings.delta,
            epsilon_budget=self.settings.epsilon,
        )

    def authorise(
        self, plan: TrainPlan, *, num_examples: int, server_round: int
    ) -> PrivateRound:
        """Decide whether this round fits the budget.

        Raises
        ------
        PrivacyBudgetError
            If it does not; nothing has been trained or recorded.

        """
        sample_rate = poisson_sample_rate(num_examples, plan.batch_size)
        noise = self.noise_multiplier(sample_rate, plan.local_steps)
        mechanism = DpMechanism(
            noise_multiplier=noise, sample_rate=sample_rate, steps=plan.local_steps
        )
        after = self.ledger().authorise(mechanism, server_round=server_round)
        step = DpStep(
            noise_multiplier=noise,
            clip_norm=self.settings.clip_norm,
            sample_rate=sample_rate,
            noise_seed=self.settings.noise_seed,
        )
        return PrivateRound(step=step, mechanism=mechanism, epsilon_after=after)

    def record(self, authorised: PrivateRound, *, run: str, server_round: int) -> float:
        """Persist an authorised round that ran; return the epsilon spent."""
        ledger = self.ledger()
        ledger.record(
            authorised.mechanism,
            run=run,
            server_round=server_round,
            clip_norm=authorised.step.clip_norm,
        )
        spent = ledger.spent()
        logger.info(
            "privacy: round %s spent; epsilon %.3f of %g (delta %g)",
            server_round,
            spent,
            self.settings.epsilon,
            self.settings.delta,
        )
        return spent

    def noise_multiplier(self, sample_rate: float, local_steps: int) -> float:
        """The configured noise, or the noise derived for ``dp-rounds`` rounds."""
        if self.settings.noise_multiplier is not None:
            return self.settings.noise_multiplier
        key = (sample_rate, local_steps)
        if key not in self._noise:
            self._noise[key] = noise_multiplier_for(
                epsilon=self.settings.epsilon,
                delta=self.settings.delta,
                sample_rate=sample_rate,
                steps=local_steps * self.settings.planned_rounds,
            )
        return self._noise[key]
