"""Secure aggregation (SecAgg+) on the one server path, and its failures.

With ``secure-aggregation = true`` the fit workflow of Flower's legacy
``DefaultWorkflow`` is :class:`GuardedSecAggPlusWorkflow`: Flower's
``SecAggPlusWorkflow`` run stage by stage, so that a protocol that halts
(too few hospitals answering, too few key shares to remove the masks) is
not the silent ``return`` Flower does (no aggregation, no
``aggregate_fit``, the run carrying on with the old weights), but a failed
round naming the round, the stage and why, or, if ``min-hospitals`` is
still met by the hospitals answering, a skipped round, said so in the log
and in ``metrics.json``.

How the protocol treats each hospital's reply (Flower 1.42,
``secaggplus_mod``): the hospital's weights ``w`` and its example count
``n`` become ``r = n / max_weight``; it sends ``[r, r * w]`` quantised
(values clipped to ``[-clipping_range, clipping_range]``, then stochastic
rounding onto ``quantization_range`` levels) and masked. The server only
ever unmasks the sums ``sum(r_i)`` and ``sum(r_i * w_i)``, whose quotient
is the example-weighted mean FedAvg computes. ``n`` also travels in the
clear in the reply's ``FitRes`` (Flower's legacy results), and each
hospital's test-set size in its evaluation reply: a hospital's data size
is not hidden from the coordinator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from logging import INFO, WARNING
from typing import TYPE_CHECKING, Any

from flwr.app import Context
from flwr.common import log
from flwr.server import LegacyContext
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.secure_aggregation.secaggplus_workflow import (
    WorkflowState,
)
from flwr.serverapp import Grid

from hospfed.common.config import ConfigMapping, get_bool, get_float, get_int
from hospfed.common.errors import ConfigError

if TYPE_CHECKING:
    from hospfed.server.strategy import RoundGuard

SECAGG_KEYS: tuple[str, ...] = (
    "secure-aggregation",
    "num-shares",
    "reconstruction-threshold",
    "clipping-range",
    "quantization-range",
    "max-weight",
    "timeout",
)
"""Run-config keys of secure aggregation."""

DEFAULT_NUM_SHARES = 4
DEFAULT_THRESHOLD = 3
DEFAULT_CLIPPING_RANGE = 8.0
"""Sent values are ``r * w`` with ``r = n / max_weight`` <= 1: within +-8
for any weight up to 8 at any hospital within ``max_weight``. The Heart
model's largest final |w| measured (FedYogi, DP-SGD at epsilon 1) was 0.86,
and ``r`` <= 0.2 there; at 2**22 levels the rounding step is 3.8e-6."""
DEFAULT_QUANTIZATION_RANGE = 2**22
DEFAULT_MAX_WEIGHT = 1000.0
DEFAULT_TIMEOUT = 600.0
MODULUS_RANGE = 2**32

STAGES: tuple[str, ...] = (
    "setup",
    "share keys",
    "collect masked vectors",
    "unmask",
)


@dataclass(frozen=True, kw_only=True)
class SecAggSettings:
    """SecAgg+ parameters (Flower's ``SecAggPlusWorkflow``).

    Attributes
    ----------
    num_shares : int
        Shares each hospital's secrets are split into (> 2).
    reconstruction_threshold : int
        Shares needed to rebuild a secret (>= 2, < ``num_shares``): every
        hospital needs this many of its neighbours answering, or the round
        halts.
    clipping_range : float
        Every value a hospital sends (its weight times ``n / max_weight``)
        must lie within +-this; Flower clips what does not, silently.
    quantization_range : int
        Integer levels over ``[-clipping_range, clipping_range]``.
    max_weight : float
        The largest example count a hospital may report (above it the
        effective clipping range shrinks below ``clipping_range``: refused).
    timeout : float or None
        Seconds to wait for replies at each stage (None: forever).

    """

    num_shares: int = DEFAULT_NUM_SHARES
    reconstruction_threshold: int = DEFAULT_THRESHOLD
    clipping_range: float = DEFAULT_CLIPPING_RANGE
    quantization_range: int = DEFAULT_QUANTIZATION_RANGE
    max_weight: float = DEFAULT_MAX_WEIGHT
    timeout: float | None = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if self.num_shares <= 2:
            raise ConfigError(
                f"num-shares must be > 2 for SecAgg+, got {self.num_shares}"
            )
        if not 2 <= self.reconstruction_threshold < self.num_shares:
            raise ConfigError(
                "reconstruction-threshold must be >= 2 and < num-shares "
                f"({self.num_shares}), got {self.reconstruction_threshold}"
            )
        if not (math.isfinite(self.clipping_range) and self.clipping_range > 0):
            raise ConfigError(
                f"clipping-range must be a finite number > 0, got {self.clipping_range}"
            )
        if not 2 <= self.quantization_range < MODULUS_RANGE // self.num_shares:
            raise ConfigError(
                "quantization-range must be >= 2 and below 2**32 / num-shares "
                f"({MODULUS_RANGE // self.num_shares}) so the masked sums cannot "
                f"wrap, got {self.quantization_range}"
            )

    def quantisation_bound(self, weights: list[float]) -> float:
        """Bound on ``|SecAgg+ mean - plain weighted mean|`` of one value.

        Each hospital's ``r_i * w_i`` is rounded stochastically to a step of
        ``2 c / Q`` (error below one step); the sum is divided by
        ``sum(r_i)``. The weights ``r_i`` themselves are rounded to
        ``1 / Q``, which moves the mean by at most ``2 c`` times that
        relative error per hospital (values within ``+-c``).

        Parameters
        ----------
        weights : list of float
            Each hospital's example count.

        """
        q, c = self.quantization_range, self.clipping_range
        ratios = [n / self.max_weight for n in weights]
        step = 2 * c / q
        rounding = len(ratios) * step / sum(ratios)
        ratio_error = sum(1 / (2 * q) for _ in ratios) / sum(ratios) * 2 * c
        return rounding + ratio_error

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (recorded in ``metrics.json`` and the config hash)."""
        return {
            "num_shares": self.num_shares,
            "reconstruction_threshold": self.reconstruction_threshold,
            "clipping_range": self.clipping_range,
            "quantization_range": self.quantization_range,
            "max_weight": self.max_weight,
            "timeout": self.timeout,
        }


def read_secagg(
    config: ConfigMapping, *, min_hospitals: int, unit_weights: bool = False
) -> SecAggSettings | None:
    """Read the SecAgg+ keys of a run config; None when it is off.

    Parameters
    ----------
    config : Mapping
        The run config.
    min_hospitals : int
        Fewest hospitals a round accepts (SecAgg+ needs >= 2 sampled).
    unit_weights : bool
        Every hospital reports weight 1 (client-level central DP): the
        default ``max-weight`` is then 1, so each sent value is the weight
        itself, at full quantisation precision.

    Raises
    ------
    ConfigError
        For a bad value, a SecAgg+ key given with secure aggregation off, or
        fewer than 2 hospitals per round.

    """
    if not get_bool(config, "secure-aggregation", False):
        given = [k for k in SECAGG_KEYS[1:] if k in config]
        if given:
            raise ConfigError(
                f"{given[0]} has no effect with secure-aggregation off; set "
                "secure-aggregation = true, or drop it"
            )
        return None
    if min_hospitals < 2:
        raise ConfigError(
            "secure aggregation needs at least 2 hospitals per round (SecAgg+ "
            f"masks each update with its neighbours'); min-hospitals is "
            f"{min_hospitals}: raise it to 2 or more, or set "
            "secure-aggregation = false"
        )
    timeout = get_float(config, "timeout", DEFAULT_TIMEOUT, minimum=0)
    return SecAggSettings(
        num_shares=get_int(config, "num-shares", DEFAULT_NUM_SHARES, minimum=3),
        reconstruction_threshold=get_int(
            config, "reconstruction-threshold", DEFAULT_THRESHOLD, minimum=2
        ),
        clipping_range=get_float(
            config, "clipping-range", DEFAULT_CLIPPING_RANGE, positive=True
        ),
        quantization_range=get_int(
            config, "quantization-range", DEFAULT_QUANTIZATION_RANGE, minimum=2
        ),
        max_weight=get_float(
            config,
            "max-weight",
            1.0 if unit_weights else DEFAULT_MAX_WEIGHT,
            positive=True,
        ),
        timeout=timeout if timeout > 0 else None,
    )


StageListener = Callable[[int, str], None]
"""Told ``(server round, stage name)`` as each SecAgg+ stage starts."""


def protocol_shares(num_shares: int) -> int:
    """The share count given to Flower: an even count raised to the next odd one.

    Flower 1.42's SecAgg+ workflow raises an even share count to odd itself,
    but only *after* announcing the even count to the hospitals: when more
    hospitals are sampled than that count, each has one neighbour more than
    shares and fails its share-keys stage (``IndexError`` in
    ``secaggplus_mod``), so every round with, e.g., the default 4 shares and 5
    or more hospitals would halt. Raising it here, before the announcement,
    is what Flower meant to do (its own warning: the count "should better be
    odd"); with at most that many hospitals every one shares with every other
    either way.
    """
    return num_shares + 1 if num_shares % 2 == 0 else num_shares


class GuardedSecAggPlusWorkflow(SecAggPlusWorkflow):
    """Flower's SecAgg+ fit workflow, whose halts fail (or skip) the round.

    Parameters
    ----------
    settings : SecAggSettings
        The protocol's parameters.
    on_stage : callable, optional
        Told as each stage starts (progress display).

    """

    def __init__(
        self, settings: SecAggSettings, on_stage: StageListener | None = None
    ) -> None:
        super().__init__(
            num_shares=protocol_shares(settings.num_shares),
            reconstruction_threshold=settings.reconstruction_threshold,
            max_weight=settings.max_weight,
            clipping_range=settings.clipping_range,
            quantization_range=settings.quantization_range,
            modulus_range=MODULUS_RANGE,
            timeout=settings.timeout,
        )
        self.settings = settings
        self.on_stage = on_stage

    def __call__(self, grid: Grid, context: Context) -> None:
        """Run the four stages; a halt is reported to the round guard."""
        if not isinstance(context, LegacyContext):
            raise TypeError(f"expected a LegacyContext, got {type(context).__name__}")
        guard = _guard_of(context)
        state = WorkflowState()
        steps = (
            self.setup_stage,
            self.share_keys_stage,
            self.collect_masked_vectors_stage,
            self.unmask_stage,
        )
        log(INFO, "secure aggregation: commencing")
        for name, step in zip(STAGES, steps, strict=True):
            if self.on_stage is not None and guard is not None:
                self.on_stage(guard.current_round, name)
            if not step(grid, context, state):
                reason = halt_reason(name, state)
                log(WARNING, "secure aggregation halted at %s: %s", name, reason)
                if guard is None:
                    raise ConfigError(f"secure aggregation halted at {name}: {reason}")
                guard.secagg_halted(
                    stage=name,
                    reason=reason,
                    answering=len(state.active_node_ids),
                    failures=list(state.failures),
                )
                return
        log(INFO, "secure aggregation: completed")

    def share_keys_stage(
        self, grid: Grid, context: LegacyContext, state: WorkflowState
    ) -> bool:
        """Flower's stage, then: only hospitals that shared keys can be "dead".

        Flower 1.42 counts as dead at the unmask stage every *sampled*
        hospital that sent no masked vector, including one that dropped out
        before sharing its keys (a hospital that died between rounds is
        still sampled until its heartbeat lapses). The survivors hold no
        share of such a hospital's key, and Flower's ``secaggplus_mod``
        fails on them with a ``KeyError``, halting the round. In the
        protocol (Bell et al., 2020) the dropped set at unmasking is those
        who shared keys but sent no masked input; this narrows Flower's
        set to it.
        """
        if not super().share_keys_stage(grid, context, state):
            return False
        state.sampled_node_ids = set(state.active_node_ids)
        return True


def halt_reason(stage: str, state: WorkflowState) -> str:
    """Why the protocol halted at ``stage``, in one line.

    Parameters
    ----------
    stage : str
        One of :data:`STAGES`.
    state : WorkflowState
        Flower's protocol state when it halted.

    """
    sampled = len(state.sampled_node_ids)
    active = len(state.active_node_ids)
    if stage == "setup" and sampled < 2:
        return "SecAgg+ needs at least 2 sampled hospitals, fewer were sampled"
    if stage == "unmask":
        return (
            f"too few key shares to remove the masks: {active} of {sampled} "
            f"hospitals sent their shares, each secret needs "
            f"{state.threshold} (reconstruction threshold) of {state.num_shares}"
        )
    return (
        f"below the reconstruction threshold: {active} of {sampled} hospitals "
        f"still answering, and every hospital needs {state.threshold} of its "
        f"{state.num_shares} share holders answering"
    )


def _guard_of(context: LegacyContext) -> RoundGuard | None:
    from hospfed.server.strategy import RoundGuard

    strategy = context.strategy
    return strategy if isinstance(strategy, RoundGuard) else None
