"""Checking the model updates the coordinator receives, before aggregating.

Without secure aggregation each hospital's reply is checked on its own: the
number and shapes of its arrays against the run's model, every value
finite, and (with ``max-update-norm``) the L2 norm of its update (its
weights minus the round's global weights) within the bound. A reply that
fails is left out of the round, logged and recorded with the hospital's
node id and the reason; the round goes on if it still has its minimum.

With secure aggregation the coordinator sees only the aggregate, so the
same checks apply to it, and a failure fails the round (no single hospital
can be left out after masking). Each hospital's example count, which
SecAgg+ uses as its weight, must not exceed ``max-weight`` (above it
Flower's quantisation clips the hospital's values to a narrower range).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from logging import WARNING

import numpy as np
from flwr.common import (
    EvaluateRes,
    FitRes,
    log,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server.client_proxy import ClientProxy

from hospfed.common.errors import RoundFailedError
from hospfed.common.model import Weights
from hospfed.common.protocol import Key
from hospfed.server.history import Declined

Results = list[tuple[ClientProxy, FitRes]]


@dataclass(frozen=True, kw_only=True)
class UpdateRules:
    """What a model update must satisfy.

    Attributes
    ----------
    shapes : list of tuple of int
        The model's array shapes, in order.
    max_update_norm : float or None
        Bound on the L2 norm of ``weights - global weights`` over all
        arrays (None: no bound).
    max_weight : float or None
        With secure aggregation, the largest example count a hospital may
        report (None: secure aggregation off).

    """

    shapes: list[tuple[int, ...]]
    max_update_norm: float | None = None
    max_weight: float | None = None

    @property
    def secure(self) -> bool:
        """Whether the updates arrive securely aggregated."""
        return self.max_weight is not None


def update_problem(
    arrays: Sequence[np.ndarray], rules: UpdateRules, reference: Weights | None
) -> str | None:
    """Why an update is refused, or None if it is acceptable.

    Parameters
    ----------
    arrays : sequence of numpy.ndarray
        The update (a hospital's weights, or the secure aggregate).
    rules : UpdateRules
        The model's shapes and the norm bound.
    reference : list of numpy.ndarray or None
        The round's global weights (the norm is of the difference); None
        skips the norm check.

    Returns
    -------
    str or None
        One line naming what is wrong (never the values themselves).

    """
    if len(arrays) != len(rules.shapes):
        return f"{len(arrays)} arrays, the model has {len(rules.shapes)}"
    shapes = [tuple(np.shape(a)) for a in arrays]
    if shapes != rules.shapes:
        return f"array shapes {shapes} are not the model's {rules.shapes}"
    bad = sum(int(np.size(a) - np.count_nonzero(np.isfinite(a))) for a in arrays)
    if bad:
        return f"{bad} values are not finite (NaN or infinite)"
    if rules.max_update_norm is not None and reference is not None:
        norm = update_norm(arrays, reference)
        if norm > rules.max_update_norm:
            return (
                f"update norm {norm:.4g} exceeds max-update-norm "
                f"{rules.max_update_norm:g}"
            )
    return None


def update_norm(arrays: Sequence[np.ndarray], reference: Weights) -> float:
    """L2 norm of ``arrays - reference`` over all arrays (float64)."""
    total = sum(
        float(np.sum((np.asarray(a, np.float64) - np.asarray(r, np.float64)) ** 2))
        for a, r in zip(arrays, reference, strict=True)
    )
    return math.sqrt(total)


def weight_problem(num_examples: int, rules: UpdateRules) -> str | None:
    """Why a SecAgg+ weight (example count) is refused, or None.

    Parameters
    ----------
    num_examples : int
        The count the hospital reported.
    rules : UpdateRules
        Carries ``max_weight``.

    """
    if rules.max_weight is None or num_examples <= rules.max_weight:
        return None
    return (
        f"reported {num_examples} examples, above max-weight {rules.max_weight:g}: "
        "SecAgg+ would clip its values to a range narrower than clipping-range "
        "(raise max-weight)"
    )


def hospital_name(proxy: ClientProxy, res: FitRes | EvaluateRes) -> str:
    """The hospital a reply names, or ``node-N``."""
    return str(res.metrics.get(Key.HOSPITAL, f"node-{proxy.node_id}"))


def screen_results(
    server_round: int,
    results: Results,
    rules: UpdateRules | None,
    *,
    reference: Weights | None,
    min_results: int,
) -> tuple[Results, list[Declined]]:
    """Leave out bad updates (with secure aggregation: fail on a bad aggregate).

    Parameters
    ----------
    server_round : int
        The round (for the log and the error).
    results : list of (ClientProxy, FitRes)
        The round's results.
    rules : UpdateRules or None
        What an update must satisfy (None: everything is kept).
    reference : list of numpy.ndarray or None
        The round's global weights.
    min_results : int
        The round's minimum (for the error).

    Returns
    -------
    tuple
        The results kept and, for each left out, a :class:`Declined` with
        the node and the reason. With secure aggregation every result
        carries the aggregate, cast to float32.

    Raises
    ------
    RoundFailedError
        With secure aggregation: an example count above ``max_weight``, or
        an aggregate that breaks the rules.

    """
    if rules is None or not results:
        return results, []
    if rules.secure:
        return _screen_aggregate(
            server_round, results, rules, reference, min_results
        ), []
    kept: Results = []
    rejected: list[Declined] = []
    for proxy, res in results:
        arrays = parameters_to_ndarrays(res.parameters)
        problem = update_problem(arrays, rules, reference)
        if problem is None:
            kept.append((proxy, res))
            continue
        hospital = hospital_name(proxy, res)
        log(
            WARNING,
            "round %s: update of %s (node %s) rejected: %s",
            server_round,
            hospital,
            proxy.node_id,
            problem,
        )
        rejected.append(
            Declined(
                reason=f"update of node {proxy.node_id} rejected: {problem}",
                hospital=hospital,
                node=proxy.node_id,
            )
        )
    return kept, rejected


def _screen_aggregate(
    server_round: int,
    results: Results,
    rules: UpdateRules,
    reference: Weights | None,
    min_results: int,
) -> Results:
    problems = [
        f"{hospital_name(proxy, res)} (node {proxy.node_id}) {problem}"
        for proxy, res in results
        if (problem := weight_problem(res.num_examples, rules)) is not None
    ]
    aggregate = parameters_to_ndarrays(results[0][1].parameters)
    problem = update_problem(aggregate, rules, reference)
    if problem is not None:
        problems.append(f"the secure aggregate is rejected: {problem}")
    if problems:
        raise RoundFailedError(
            server_round=server_round,
            phase="train",
            received=len(results),
            required=min_results,
            failures=problems,
        )
    single = ndarrays_to_parameters([np.asarray(a, np.float32) for a in aggregate])
    for _, res in results:  # every result carries the same aggregate
        res.parameters = single
    return results
