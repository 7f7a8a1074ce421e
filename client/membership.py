"""Does a model leak which patients it was trained on? A check at the hospital.

``hospfed-client privacy-check`` runs a loss-threshold membership-inference
attack (Yeom et al. 2018; the baseline attack of most MIA audits) against a
run's model on the hospital's own data: the rows the model trained on (the
task's training split of this hospital) are the members, its held-out test
rows the non-members. An attacker who sees a row and the model guesses
"member" when the model's loss on it is low; how well that separates the
two sets is the leakage:

- ROC AUC of the attack (0.5: no better than a coin),
- its advantage, the largest true-positive minus false-positive rate over
  all thresholds (0: none),

each with a 95% bootstrap confidence interval (rows resampled within each
set, seeded), and a plain-language verdict that states the test's power:
the smallest AUC this many rows would detect (normal approximation of the
AUC's standard error at 0.5, Hanley & McNeil 1982; 5% two-sided level, 80%
power). Everything is computed at the hospital; nothing of it is sent.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hospfed.common.files import atomic_write
from hospfed.common.model import ModelSpec, Weights
from hospfed.common.training import HospitalData

__all__ = ["MembershipAudit", "membership_audit", "per_example_loss", "write_audit"]

_EPS = 1e-7
_Z_POWER = 1.959964 + 0.841621  # 5% two-sided level plus 80% power


@dataclass(frozen=True)
class MembershipAudit:
    """The attack's result on one hospital's data (aggregates only)."""

    members: int
    non_members: int
    auc: float
    auc_ci: tuple[float, float]
    advantage: float
    advantage_ci: tuple[float, float]
    detectable_auc: float
    verdict: str


def per_example_loss(
    spec: ModelSpec, y: np.ndarray, predicted: np.ndarray
) -> np.ndarray:
    """Each row's loss: cross-entropy (binary, multi-class) or squared error."""
    y = np.asarray(y, dtype=np.float64).ravel()
    if spec.output == "multiclass":
        chosen = predicted[np.arange(len(y)), y.astype(np.int64)]
        return np.asarray(-np.log(np.clip(chosen, _EPS, 1.0)))
    p = np.asarray(predicted, dtype=np.float64).ravel()
    if spec.output == "continuous":
        return np.asarray((p - y) ** 2)
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.asarray(-(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _auc_and_advantage(members: np.ndarray, others: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import roc_auc_score, roc_curve

    truth = np.r_[np.ones(len(members)), np.zeros(len(others))]
    score = -np.r_[members, others]  # lower loss: more likely a member
    fpr, tpr, _ = roc_curve(truth, score)
    return float(roc_auc_score(truth, score)), float(np.max(tpr - fpr))


def membership_audit(
    spec: ModelSpec,
    weights: Weights,
    data: HospitalData,
    *,
    bootstrap: int = 1000,
    seed: int = 0,
) -> MembershipAudit:
    """Attack ``weights`` with its losses on ``data``'s training vs test rows.

    Parameters
    ----------
    spec, weights : ModelSpec, list of numpy.ndarray
        The model under audit.
    data : HospitalData
        The hospital's inputs as the run's task builds them: training rows
        are the members, test rows the non-members.
    bootstrap : int
        Resamples for the confidence intervals.
    seed : int
        Seed of the resampling.

    Returns
    -------
    MembershipAudit
        AUC, advantage, their 95% intervals, the detectable AUC, a verdict.

    """
    from hospfed.client.predict import forward

    members = per_example_loss(spec, data.y_train, forward(spec, weights, data.x_train))
    others = per_example_loss(spec, data.y_test, forward(spec, weights, data.x_test))
    auc, advantage = _auc_and_advantage(members, others)
    rng = np.random.default_rng(seed)
    draws = np.array(
        [
            _auc_and_advantage(
                rng.choice(members, len(members)), rng.choice(others, len(others))
            )
            for _ in range(bootstrap)
        ]
    )
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    n, m = len(members), len(others)
    detectable = 0.5 + _Z_POWER * math.sqrt((n + m + 1) / (12.0 * n * m))
    auc_ci = (float(low[0]), float(high[0]))
    return MembershipAudit(
        members=n,
        non_members=m,
        auc=auc,
        auc_ci=auc_ci,
        advantage=advantage,
        advantage_ci=(float(low[1]), float(high[1])),
        detectable_auc=min(1.0, detectable),
        verdict=_verdict(auc, auc_ci, detectable, n, m),
    )


def _verdict(
    auc: float, ci: tuple[float, float], detectable: float, n: int, m: int
) -> str:
    if ci[0] > 0.5:
        return (
            f"LEAKAGE: an attacker who sees a patient's record and the model can "
            f"tell whether the record was in the training data better than "
            f"chance (attack AUC {auc:.3f}, 95% CI {ci[0]:.3f}-{ci[1]:.3f}, above "
            "0.5). Train with DP-SGD (a smaller epsilon), or regularise more, "
            "before sharing this model."
        )
    return (
        f"No membership leakage detected: the attack does no better than chance "
        f"(AUC {auc:.3f}, 95% CI {ci[0]:.3f}-{ci[1]:.3f} includes 0.5). With "
        f"{n} training and {m} held-out rows this check would detect an AUC of "
        f"{min(1.0, detectable):.3f} or more (80% power); smaller leakage, and "
        "stronger attacks than this loss-threshold one, are not ruled out."
    )


def write_audit(audit: MembershipAudit, out: Path) -> None:
    """Write the audit as JSON (mode 0600, atomically): aggregates only."""
    atomic_write(out, json.dumps(asdict(audit), indent=2).encode(), mode=0o600)
