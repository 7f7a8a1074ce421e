"""Record-level differential privacy at the hospital: settings, accounting, ledger.

- :mod:`~hospfed.client.privacy.settings`: the hospital's DP-SGD settings
  (:class:`PrivacySettings`) and one round's instructions to a backend
  (:class:`DpStep`).
- :mod:`~hospfed.client.privacy.accounting`: DP-SGD's sample rate and the
  noise a budget allows; mechanisms as frozen data (:class:`DpMechanism`)
  and their epsilon (Rényi DP of the sampled Gaussian mechanism, Opacus's
  analysis) come from :mod:`hospfed.common.rdp`, shared with the
  coordinator's central DP, and are re-exported here.
- :mod:`~hospfed.client.privacy.ledger`: every mechanism the hospital ever
  ran, persisted atomically under a lock; its file format and MAC are in
  :mod:`~hospfed.client.privacy.records`, the spending receipt beside the
  dataset in :mod:`~hospfed.client.privacy.receipt`.
- :mod:`~hospfed.client.privacy.policy`: the round policy
  (:class:`HospitalPrivacy`): what a round may cost, decided before training.
"""

from hospfed.client.privacy.accounting import (
    expected_batch_size,
    noise_multiplier_for,
    poisson_sample_rate,
)
from hospfed.client.privacy.ledger import (
    LEDGER_FILE,
    PrivacyLedger,
    ledger_lock,
    load_ledger,
)
from hospfed.client.privacy.policy import HospitalPrivacy, PrivateRound
from hospfed.client.privacy.receipt import SpendingReceipt, receipt_path
from hospfed.client.privacy.records import BudgetChange, LedgerEntry, ledger_mac_key
from hospfed.client.privacy.settings import (
    DpStep,
    InsecureRandomnessWarning,
    PrivacySettings,
)
from hospfed.common.rdp import DpMechanism, epsilon_spent

__all__ = [
    "LEDGER_FILE",
    "BudgetChange",
    "DpMechanism",
    "DpStep",
    "HospitalPrivacy",
    "InsecureRandomnessWarning",
    "LedgerEntry",
    "PrivacyLedger",
    "PrivacySettings",
    "PrivateRound",
    "SpendingReceipt",
    "epsilon_spent",
    "expected_batch_size",
    "ledger_lock",
    "ledger_mac_key",
    "load_ledger",
    "noise_multiplier_for",
    "poisson_sample_rate",
    "receipt_path",
]
