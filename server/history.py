"""The run history: every round's metrics from every hospital.

Each :class:`RoundRecord` keeps per-hospital training loss and evaluation
metrics (accuracy, ROC AUC, loss on the hospital's own test set) plus two
summaries: the example-weighted mean (weights = test-set sizes) and the plain
mean over hospitals (FLamby's metric). NaN (e.g. AUC on a one-class test set)
is kept out of the means and written to JSON as ``null``, and read back as
NaN (:meth:`RunHistory.from_json`, for checkpoints).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from hospfed.common.metrics import Evaluation

SUMMARY_METRICS = ("accuracy", "auc", "loss")
"""Summarised in every round (NaN where the label's kind has no such metric)."""

KIND_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("accuracy", "auc", "loss"),
    "multiclass": ("accuracy", "macro_f1", "loss"),
    "continuous": ("rmse", "mae", "loss"),
}
"""The metrics that describe a model of each label kind, headline first."""

METRIC_LABELS = {
    "accuracy": "accuracy",
    "auc": "ROC AUC",
    "macro_f1": "macro-F1",
    "rmse": "RMSE",
    "mae": "MAE",
    "loss": "loss",
}
_KIND_ONLY = ("macro_f1", "rmse", "mae")  # recorded only by the kinds they fit


@dataclass
class Declined:
    """A hospital that did not train in a round, and why.

    Attributes
    ----------
    reason : str
        The hospital's own message (e.g. its privacy budget), no traceback.
    hospital : str or None
        Its name; None until the coordinator learns which hospital the
        failed node is (from a result it sends later in the run).
    node : int or None
        The Flower node that failed (not written to JSON: node ids change
        from run to run).

    """

    reason: str
    hospital: str | None = None
    node: int | None = None

    def label(self) -> str:
        """``hospital: reason``, or the reason alone when it names the hospital."""
        if self.hospital is None or self.reason.startswith(f"{self.hospital}: "):
            return self.reason
        return f"{self.hospital}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        """``{"hospital": name or "node N" or None, "reason": ...}``."""
        name = self.hospital
        if name is None and self.node is not None:
            name = f"node {self.node}"
        return {"hospital": name, "reason": self.reason}


@dataclass
class RoundRecord:
    """Metrics of one round.

    Attributes
    ----------
    server_round : int
        The round (an epoch for the pooled reference).
    train : dict
        Hospital name to ``{"train_loss", "num_examples"}``, plus
        ``"epsilon"`` (DP spent so far) and ``"noise_multiplier"`` (when
        the hospital reports it) for a private hospital.
    evaluate : dict
        Hospital name to ``{"accuracy", "auc", "loss", "num_examples"}`` on
        that hospital's own test set, plus ``"macro_f1"`` (multi-class
        label) or ``"rmse"`` and ``"mae"`` (continuous label); a metric
        that does not fit the label's kind is NaN.
    declined : list of Declined
        Hospitals that did not take part in training, each with its reason
        (e.g. its privacy budget).
    skipped : str or None
        Why the round trained nothing (a secure aggregation that halted
        while the minimum of hospitals was still met): the weights after it
        are those before it. None for a round that aggregated.
    central : dict or None
        With client-level central DP, the round's mechanism (noise
        multiplier, sample rate, clipping norm, noise std, hospitals) and
        the central epsilon after it (:mod:`hospfed.server.central_dp`).
    split : str
        The set ``evaluate`` (and ``personalised``) scored: ``"test"`` or
        ``"validation"`` (the task's held-out share of the training rows).
    personalised : dict
        Hospital name to the same metrics as ``evaluate``, of the model the
        hospital adapted from this round's global model on its own data (a
        run with ``personalise``; its final round only).

    """

    server_round: int
    train: dict[str, dict[str, float]] = field(default_factory=dict)
    evaluate: dict[str, dict[str, float]] = field(default_factory=dict)
    declined: list[Declined] = field(default_factory=list)
    skipped: str | None = None
    central: dict[str, float] | None = None
    split: str = "test"
    personalised: dict[str, dict[str, float]] = field(default_factory=dict)

    def add_training(
        self,
        hospital: str,
        loss: float,
        num_examples: int,
        *,
        epsilon: float | None = None,
        noise_multiplier: float | None = None,
    ) -> None:
        """Record one hospital's local training in this round."""
        self.train[hospital] = {
            "train_loss": float(loss),
            "num_examples": float(num_examples),
        }
        if epsilon is not None:
            self.train[hospital]["epsilon"] = float(epsilon)
        if noise_multiplier is not None:
            self.train[hospital]["noise_multiplier"] = float(noise_multiplier)

    def central_epsilon(self) -> float | None:
        """The client-level central epsilon after this round (None: off)."""
        return None if self.central is None else self.central.get("epsilon")

    def epsilons(self) -> dict[str, float]:
        """Epsilon spent so far by each private hospital that trained.

        A hospital that personalised under DP in this round counts what its
        personal training spent too.
        """
        spent = {h: m["epsilon"] for h, m in self.train.items() if "epsilon" in m}
        return spent | {
            h: m["epsilon"] for h, m in self.personalised.items() if "epsilon" in m
        }

    def max_epsilon(self) -> float | None:
        """The largest epsilon any hospital has spent (None: none private)."""
        values = self.epsilons().values()
        return max(values) if values else None

    def add_evaluation(self, hospital: str, score: Evaluation) -> None:
        """Record one hospital's evaluation of the global model on its own set."""
        self.evaluate[hospital] = _scores(score)

    def add_personalised(self, hospital: str, score: Evaluation) -> None:
        """Record one hospital's evaluation of its personalised model."""
        self.personalised[hospital] = _scores(score)

    def kind(self) -> str:
        """The label kind the round's metrics describe (see :data:`KIND_METRICS`)."""
        reported = {m for row in self.evaluate.values() for m in row}
        if "rmse" in reported:
            return "continuous"
        return "multiclass" if "macro_f1" in reported else "binary"

    def _summarised(self) -> tuple[str, ...]:
        extra = tuple(m for m in KIND_METRICS[self.kind()] if m in _KIND_ONLY)
        return SUMMARY_METRICS + extra

    def weighted(self, *, personalised: bool = False) -> dict[str, float]:
        """Example-weighted mean of each evaluation metric over hospitals."""
        rows = (self.personalised if personalised else self.evaluate).values()
        return {m: _mean(rows, m, weighted=True) for m in self._summarised()}

    def mean(self, *, personalised: bool = False) -> dict[str, float]:
        """Unweighted mean of each evaluation metric over hospitals.

        ``personalised``: of the hospitals' personalised models (FLamby's
        metric for them: the mean of local accuracies).
        """
        rows = (self.personalised if personalised else self.evaluate).values()
        return {m: _mean(rows, m, weighted=False) for m in self._summarised()}

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict (NaN becomes None).

        ``skipped`` only for a skipped round, ``central_dp`` only with
        client-level central DP (so records of earlier runs are unchanged).
        """
        optional: dict[str, Any] = {}
        if self.skipped is not None:
            optional["skipped"] = self.skipped
        if self.central is not None:
            optional["central_dp"] = self.central
        if self.split != "test":
            optional["split"] = self.split
        if self.personalised:
            optional["personalised"] = {
                "hospitals": self.personalised,
                "weighted": self.weighted(personalised=True),
                "mean": self.mean(personalised=True),
            }
        cleaned: dict[str, Any] = _clean(
            {
                "round": self.server_round,
                "train": self.train,
                "evaluate": self.evaluate,
                "weighted": self.weighted(),
                "mean": self.mean(),
                "epsilon": {"max": self.max_epsilon(), **self.epsilons()},
                "declined": [d.to_json() for d in self.declined],
                **optional,
            }
        )
        return cleaned

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RoundRecord:
        """Read back what :meth:`to_json` wrote (``null`` becomes NaN).

        Raises
        ------
        ValueError
            If a field is missing or of the wrong type.

        """
        try:
            return cls(
                server_round=int(data["round"]),
                train=_metrics_table(data["train"]),
                evaluate=_metrics_table(data["evaluate"]),
                declined=[
                    Declined(reason=str(d["reason"]), hospital=d.get("hospital"))
                    for d in data["declined"]
                ],
                skipped=None if data.get("skipped") is None else str(data["skipped"]),
                central=_central(data.get("central_dp")),
                split=str(data.get("split", "test")),
                personalised=_metrics_table(
                    (data.get("personalised") or {}).get("hospitals", {})
                ),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed round record: {exc!r}") from None


def _scores(score: Evaluation) -> dict[str, float]:
    scores = {
        "accuracy": score.accuracy,
        "auc": score.auc,
        "loss": score.loss,
        "num_examples": float(score.num_examples),
    }
    for name in _KIND_ONLY:
        value = float(getattr(score, name))
        if not math.isnan(value):
            scores[name] = value
    return scores


def _central(data: Any) -> dict[str, float] | None:
    if data is None:
        return None
    return {str(k): float(v) for k, v in data.items()}


def _metrics_table(data: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    return {
        str(hospital): {
            str(k): math.nan if v is None else float(v) for k, v in metrics.items()
        }
        for hospital, metrics in data.items()
    }


def _mean(rows: Any, metric: str, *, weighted: bool) -> float:
    pairs = [
        (r["num_examples"] if weighted else 1.0, r[metric])
        for r in rows
        if not math.isnan(r.get(metric, math.nan))
    ]
    total = sum(w for w, _ in pairs)
    return sum(w * v for w, v in pairs) / total if total else math.nan


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


class RoundObserver(Protocol):
    """Told about each round as it completes (e.g. a progress display)."""

    def on_round_end(self, record: RoundRecord, num_rounds: int) -> None:
        """Handle a finished round."""
        ...


@dataclass
class RunHistory:
    """All rounds of one run, in order."""

    rounds: list[RoundRecord] = field(default_factory=list)

    def round(self, server_round: int) -> RoundRecord:
        """Return the record of ``server_round``, creating it if needed."""
        if not self.rounds or self.rounds[-1].server_round != server_round:
            self.rounds.append(RoundRecord(server_round))
        return self.rounds[-1]

    def final(self) -> RoundRecord | None:
        """The last round with evaluation results, if any."""
        done = [r for r in self.rounds if r.evaluate]
        return done[-1] if done else None

    def to_json(self) -> list[dict[str, Any]]:
        """Return every round as JSON-ready dicts."""
        return [r.to_json() for r in self.rounds]

    @classmethod
    def from_json(cls, data: list[Any]) -> RunHistory:
        """Read back what :meth:`to_json` wrote.

        Raises
        ------
        ValueError
            If a record is malformed, or the rounds are not 1, 2, 3, ...

        """
        rounds = [RoundRecord.from_json(r) for r in data]
        numbers = [r.server_round for r in rounds]
        if numbers != list(range(1, len(rounds) + 1)):
            raise ValueError(f"rounds must be 1, 2, 3, ... without gaps, got {numbers}")
        return cls(rounds)
