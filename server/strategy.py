"""The round guard (the strategies themselves: :mod:`hospfed.server.factory`).

:class:`RoundGuard` wraps any strategy (Flower's DP wrappers included): it
fails the run with :class:`~hospfed.common.errors.RoundFailedError` when a
round gets fewer results than its minimum (Flower alone logs "0 results and
N failures" and carries on), records every hospital's metrics and who did
not train, stops between rounds on request, and hands each completed
round's weights to the checkpoint. It also checks every update before
aggregating (:mod:`hospfed.server.validation`), and turns a SecAgg+ round
that ended without aggregating into a failed (or, within the minimum, a
skipped) round instead of Flower's silent carrying on.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from logging import INFO, WARNING
from typing import Any

from flwr.common import (
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Parameters,
    Scalar,
    log,
    parameters_to_ndarrays,
)
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import (
    Strategy,
)

from hospfed.common.errors import RoundFailedError
from hospfed.common.metrics import Evaluation
from hospfed.common.model import Weights
from hospfed.common.personal import (
    PERSONAL_PREFIX,
    split_of_round,
)
from hospfed.common.protocol import Key
from hospfed.server.history import Declined, RoundObserver, RunHistory
from hospfed.server.replies import (
    EvalFailures,
    Failures,
    ReplyLog,
    failure_reason,
    short_reason,
)
from hospfed.server.stop import RunInterruptedError, StopRequest
from hospfed.server.validation import UpdateRules, hospital_name, screen_results


class RoundGuard(Strategy):
    """Wrap a strategy: enforce a minimum of results, record metrics.

    Also: numbers rounds from ``first_round`` (a resumed run continues
    with its real round numbers, which FedAdam's bias correction and each
    hospital's batch order depend on), stops between rounds when ``stop``
    is set, aggregates results in a fixed order (by hospital, so the same
    seed gives the same weights bit for bit), names each hospital that
    did not train, and reports each completed round's weights to
    ``on_round_complete`` (the checkpoint) before telling ``observer``.

    Parameters
    ----------
    strategy : Strategy
        The wrapped strategy.
    min_results : int
        Fewest successful results a train or evaluate round accepts.
    num_rounds : int
        Total rounds (passed on to the observer).
    history : RunHistory
        Where every round's metrics are recorded.
    observer : RoundObserver, optional
        Told about each finished round.
    weights : list of numpy.ndarray, optional
        The global weights the run starts from (reported as the completed
        weights until a round aggregates new ones).
    first_round : int
        The real number of Flower's round 1.
    stop : StopRequest, optional
        Checked before each round starts.
    replies : ReplyLog, optional
        Tells which node sent each failed reply.
    on_round_complete : callable, optional
        Called with ``(server_round, weights)`` once a round has trained and
        evaluated.
    rules : UpdateRules, optional
        What every update (or, with secure aggregation, the aggregate) must
        satisfy; None checks nothing.
    evaluate_on : str
        The run's ``evaluate-on``: which set each round's scores are of.
    seed : int, optional
        The run's seed: Flower samples hospitals (``fraction-fit`` below 1)
        and orders SecAgg+ neighbours with Python's ``random``, which is
        reseeded from (seed, round, phase) before each round's sampling, so
        a run, and a resumed run, sample the same hospitals in a given round.

    """

    def __init__(
        self,
        strategy: Strategy,
        *,
        min_results: int,
        num_rounds: int,
        history: RunHistory,
        observer: RoundObserver | None = None,
        weights: Weights | None = None,
        first_round: int = 1,
        stop: StopRequest | None = None,
        replies: ReplyLog | None = None,
        on_round_complete: Callable[[int, Weights], None] | None = None,
        rules: UpdateRules | None = None,
        seed: int | None = None,
        evaluate_on: str = "test",
    ) -> None:
        super().__init__()
        self.seed = seed
        self.evaluate_on = evaluate_on
        self.strategy = strategy
        self.min_results = min_results
        self.num_rounds = num_rounds
        self.history = history
        self.observer = observer
        self.weights: Weights | None = weights
        self.completed_rounds = first_round - 1
        self.stop = stop
        self.replies = replies
        self.on_round_complete = on_round_complete
        self.names: dict[int, str] = {}
        self._offset = first_round - 1
        self._aggregated: Weights | None = None
        self.rules = rules
        self.current_round = first_round - 1
        self._global: Weights | None = None
        self._fit_finished = True

    def __repr__(self) -> str:
        return f"RoundGuard({self.strategy!r}, min_results={self.min_results})"

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        """Delegate to the wrapped strategy."""
        return self.strategy.initialize_parameters(client_manager)

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        """Stop if asked; delegate; fail if fewer hospitals than the minimum."""
        if self.stop is not None and self.stop.is_set():
            raise self._interrupted()
        server_round += self._offset
        self._aggregated = None
        self.current_round = server_round
        self._global = parameters_to_ndarrays(parameters)
        self._reseed(server_round, "fit")
        instructions = self.strategy.configure_fit(
            server_round, parameters, client_manager
        )
        self._check(server_round, "train", len(instructions), [], sampled=True)
        self._fit_finished = False  # until aggregated, skipped or failed
        return instructions

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: Failures,
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        """Record who trained and who did not; check; fail if too few; delegate."""
        server_round += self._offset
        self._fit_finished = True
        results = sorted(results, key=lambda r: (_hospital(*r), r[0].node_id))
        record = self.history.round(server_round)
        for proxy, res in results:
            self._learn(proxy, res.metrics)
        results, rejected = screen_results(
            server_round,
            results,
            self.rules,
            reference=self._global,
            min_results=self.min_results,
        )
        for proxy, res in results:
            loss = float(res.metrics.get(Key.TRAIN_LOSS, math.nan))
            record.add_training(
                _hospital(proxy, res),
                loss,
                res.num_examples,
                epsilon=_float_or_none(res.metrics.get(Key.EPSILON)),
                noise_multiplier=_float_or_none(res.metrics.get(Key.NOISE_MULTIPLIER)),
            )
        failures = _unique(failures)
        record.declined = [self._declined(f) for f in failures] + rejected
        self._resolve_names()
        for declined in record.declined:
            log(
                WARNING,
                "round %s: a hospital did not train: %s",
                server_round,
                declined.label(),
            )
        labels = [d.label() for d in record.declined]
        self._check(server_round, "train", len(results), labels)
        parameters, metrics = self.strategy.aggregate_fit(
            server_round, results, failures
        )
        if parameters is not None:
            self._aggregated = parameters_to_ndarrays(parameters)
        return parameters, metrics

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, EvaluateIns]]:
        """Delegate; fail the run if fewer hospitals than the minimum are asked.

        Also fails the round whose training ended without aggregating and
        without saying why (a fit workflow that just returned).
        """
        server_round += self._offset
        if not self._fit_finished and self.current_round == server_round:
            raise RoundFailedError(
                server_round=server_round,
                phase="train",
                received=0,
                required=self.min_results,
                failures=["training ended without any aggregation"],
            )
        self._reseed(server_round, "evaluate")
        instructions = self.strategy.configure_evaluate(
            server_round, parameters, client_manager
        )
        self._check(server_round, "evaluate", len(instructions), [], sampled=True)
        return instructions

    def aggregate_evaluate(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, EvaluateRes]],
        failures: EvalFailures,
    ) -> tuple[float | None, dict[str, Scalar]]:
        """Record metrics; fail if too few; the round is then complete."""
        server_round += self._offset
        record = self.history.round(server_round)
        for proxy, res in results:
            self._learn(proxy, res.metrics)
        self._resolve_names()
        self._check(server_round, "evaluate", len(results), self._labels(failures))
        record.split = split_of_round(self.evaluate_on, server_round, self.num_rounds)
        for proxy, res in sorted(results, key=lambda r: _hospital(*r)):
            name = _hospital(proxy, res)
            record.add_evaluation(name, _score(res, float(res.loss), ""))
            personal_loss = res.metrics.get(PERSONAL_PREFIX + Key.LOSS)
            if personal_loss is not None:
                record.add_personalised(
                    name, _score(res, float(personal_loss), PERSONAL_PREFIX)
                )
                if Key.EPSILON in res.metrics:  # its personal DP-SGD's spending
                    spent = float(res.metrics[Key.EPSILON])  # type: ignore[arg-type]
                    record.personalised[name]["epsilon"] = spent
        loss, _ = self.strategy.aggregate_evaluate(server_round, results, failures)
        summary = record.weighted()
        log(
            INFO,
            "round %s: weighted accuracy %.4f, mean accuracy %.4f",
            server_round,
            summary["accuracy"],
            record.mean()["accuracy"],
        )
        if self._aggregated is not None:
            self.weights = self._aggregated
        self.completed_rounds = server_round
        if self.on_round_complete is not None and self.weights is not None:
            self.on_round_complete(server_round, self.weights)
        if self.observer is not None:
            self.observer.on_round_end(record, self.num_rounds)
        return loss, {f"weighted-{k}": v for k, v in summary.items()}

    def evaluate(
        self, server_round: int, parameters: Parameters
    ) -> tuple[float, dict[str, Scalar]] | None:
        """Delegate to the wrapped strategy (no central test set by default)."""
        return self.strategy.evaluate(server_round + self._offset, parameters)

    def secagg_halted(
        self,
        *,
        stage: str,
        reason: str,
        answering: int,
        failures: Sequence[BaseException],
    ) -> None:
        """The SecAgg+ protocol halted this round: fail it, or skip it.

        The round is skipped (the run goes on with the weights it had,
        the round's record saying why) when the hospitals still answering
        meet the minimum; otherwise it fails.

        Parameters
        ----------
        stage : str
            The stage at which the protocol halted.
        reason : str
            Why (too few hospitals answering, too few key shares).
        answering : int
            Hospitals still answering when it halted.
        failures : sequence of BaseException
            The failed replies so far.

        Raises
        ------
        RoundFailedError
            Naming the round, the stage and why.

        """
        server_round = self.current_round
        self._fit_finished = True
        record = self.history.round(server_round)
        record.declined = [self._declined(f) for f in _unique(list(failures))]
        self._resolve_names()
        labels = [d.label() for d in record.declined]
        why = f"secure aggregation halted at {stage}: {reason}"
        if answering < self.min_results:
            if self.stop is not None and self.stop.is_set():
                raise self._interrupted()
            raise RoundFailedError(
                server_round=server_round,
                phase="train",
                received=answering,
                required=self.min_results,
                failures=[why, *labels],
            )
        record.skipped = why
        log(WARNING, "round %s skipped (weights unchanged): %s", server_round, why)

    def _reseed(self, server_round: int, phase: str) -> None:
        # Flower's client manager samples with the module-level ``random``;
        # seeding it here is the only hook the legacy strategy API offers.
        if self.seed is not None:
            random.seed(f"hospfed-{self.seed}-{server_round}-{phase}")

    def _interrupted(self) -> RunInterruptedError:
        assert self.stop is not None
        return RunInterruptedError(
            completed_rounds=self.completed_rounds,
            num_rounds=self.num_rounds,
            reason=self.stop.reason or "stop requested",
            exit_code=self.stop.exit_code,
        )

    def _learn(self, proxy: ClientProxy, metrics: dict[str, Scalar]) -> None:
        if Key.HOSPITAL in metrics:
            self.names[proxy.node_id] = str(metrics[Key.HOSPITAL])

    def _declined(
        self, failure: tuple[ClientProxy, FitRes | EvaluateRes] | BaseException
    ) -> Declined:
        if isinstance(failure, BaseException):
            node = None if self.replies is None else self.replies.node_of(failure)
            reason = failure_reason(failure)
        else:
            node = failure[0].node_id
            reason = short_reason(failure[1].status.message)
        return Declined(reason=reason, node=node)

    def _labels(self, failures: Failures | EvalFailures) -> list[str]:
        declined = [self._declined(f) for f in failures]
        for d in declined:
            d.hospital = self.names.get(d.node) if d.node is not None else None
        return [d.label() for d in declined]

    def _resolve_names(self) -> None:
        for record in self.history.rounds:
            for declined in record.declined:
                if declined.hospital is None and declined.node in self.names:
                    declined.hospital = self.names[declined.node]

    def _check(
        self,
        server_round: int,
        phase: str,
        count: int,
        failures: list[str],
        *,
        sampled: bool = False,
    ) -> None:
        if count >= self.min_results:
            return
        if self.stop is not None and self.stop.is_set():
            # A signal sent to the whole process group may have stopped the
            # hospitals' workers too: this round is lost, not failed.
            raise self._interrupted()
        reasons = failures
        if sampled:  # Flower would skip the round silently
            reasons = [f"only {count} hospitals available to sample"]
        raise RoundFailedError(
            server_round=server_round,
            phase=phase,
            received=count,
            required=self.min_results,
            failures=reasons,
        )


def _unique(failures: list[Any]) -> list[Any]:
    """Each failed reply once (Flower's SecAgg+ workflow lists some twice)."""
    seen: set[int] = set()
    unique = []
    for failure in failures:
        error = failure.args[0] if isinstance(failure, BaseException) else None
        key = id(error if error is not None else failure)
        if key not in seen:
            seen.add(key)
            unique.append(failure)
    return unique


def _score(res: EvaluateRes, loss: float, prefix: str) -> Evaluation:
    """A hospital's scores (``prefix``: of its personalised model) as reported."""
    metrics = res.metrics
    return Evaluation(
        loss=loss,
        accuracy=_metric(metrics, prefix + Key.ACCURACY),
        auc=_metric(metrics, prefix + Key.AUC),
        macro_f1=_metric(metrics, prefix + Key.MACRO_F1),
        rmse=_metric(metrics, prefix + Key.RMSE),
        mae=_metric(metrics, prefix + Key.MAE),
        num_examples=res.num_examples,
    )


def _metric(metrics: dict[str, Scalar], key: str) -> float:
    """A hospital's reported metric, NaN when it did not report it."""
    return float(metrics.get(key, math.nan))  # type: ignore[arg-type]


def _float_or_none(value: Scalar | None) -> float | None:
    return None if value is None else float(value)


_hospital = hospital_name
