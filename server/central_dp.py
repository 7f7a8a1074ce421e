"""Client-level central differential privacy: settings, strategy, accounting.

With ``central-dp = "fixed"`` or ``"adaptive"`` the strategy is wrapped in
Flower's client-side clipping wrapper: each hospital clips its update to
``C`` (:mod:`hospfed.client.central_dp`) and the coordinator adds Gaussian
noise of standard deviation ``z C / m`` to the mean of the ``m`` clipped
updates. That bounds only the plain mean, so every hospital weighs 1 (it
reports one example: under SecAgg+ the weight is applied inside the masked
vector, where the coordinator cannot change it) and only FedAvg and FedProx
are allowed. Clipping is always client-side, so it works the same with
secure aggregation on or off.

:class:`CentralDp` changes Flower's wrapper in four ways: the noise is
calibrated to the results aggregated (Flower fixes the count when the run
starts, and drops a round in which any hospital failed); replies that break
the contract are left out; adaptive noise computed with the next round's
smaller norm is topped up; each round's mechanism and the epsilon so far are
recorded in the history, from which a resumed run rebuilds both. Epsilon:
Rényi DP of the sampled Gaussian (noise multiplier ``z``, sample rate =
sampled / available hospitals) over the rounds aggregated
(:mod:`hospfed.common.rdp`); adaptive clipping is accounted with ``z``
(Flower splits it between the update and the clipped count, Andrew et al.
2021). README, "Client-level central DP", says what this protects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from logging import INFO, WARNING
from typing import Any

import numpy as np
from flwr.common import (
    FitIns,
    FitRes,
    Parameters,
    Scalar,
    log,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import (
    DifferentialPrivacyClientSideAdaptiveClipping,
    DifferentialPrivacyClientSideFixedClipping,
    Strategy,
)

from hospfed.common.config import ConfigMapping, get_choice, get_float
from hospfed.common.errors import ConfigError, RoundFailedError
from hospfed.common.model import Weights
from hospfed.common.protocol import Key
from hospfed.common.rdp import DpMechanism, check_delta, epsilon_spent
from hospfed.server.history import Declined, RunHistory
from hospfed.server.validation import hospital_name, update_norm

CENTRAL_DP_MODES: tuple[str, ...] = ("off", "fixed", "adaptive")
CENTRAL_DP_KEYS: tuple[str, ...] = (
    "central-dp",
    "central-noise-multiplier",
    "central-clipping-norm",
    "central-delta",
    "target-clipped-quantile",
    "clip-norm-lr",
    "clipped-count-stddev",
)
"""Run-config keys of client-level central DP."""
ADAPTIVE_ONLY = ("target-clipped-quantile", "clip-norm-lr", "clipped-count-stddev")
CENTRAL_DP_STRATEGIES = frozenset({"fedavg", "fedprox"})
"""The strategies whose aggregate is the plain mean of the hospitals' models."""

DEFAULT_NOISE_MULTIPLIER = 1.0
DEFAULT_CLIPPING_NORM = 0.5
DEFAULT_DELTA = 1e-3
DEFAULT_TARGET_QUANTILE = 0.5  # Flower's and Andrew et al.'s defaults
DEFAULT_CLIP_NORM_LR = 0.2
NORM_TOLERANCE = 1e-4
"""Relative slack of the server's check of a clipped update (float32)."""


@dataclass(frozen=True, kw_only=True)
class CentralDpSettings:
    """Client-level central DP of one run.

    Attributes
    ----------
    mechanism : str
        ``fixed`` or ``adaptive`` clipping (always at the hospital).
    noise_multiplier : float
        ``z``: the aggregate's noise is ``z C / m`` (``m`` hospitals).
    clipping_norm : float
        ``C`` (adaptive: its initial value).
    delta : float
        Delta at which the epsilon is reported.
    target_clipped_quantile, clip_norm_lr, clipped_count_stddev : float or None
        Adaptive clipping's settings (None for fixed). The count's noise
        defaults to ``z``: Andrew et al.'s ``hospitals / 20`` is below what
        Flower allows at a handful of hospitals (it needs ``z < 2 x``).

    """

    mechanism: str
    noise_multiplier: float
    clipping_norm: float
    delta: float = DEFAULT_DELTA
    target_clipped_quantile: float | None = None
    clip_norm_lr: float | None = None
    clipped_count_stddev: float | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (recorded in ``metrics.json`` and the config hash)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def read_central_dp(
    config: ConfigMapping, *, strategy: str, secure: bool
) -> CentralDpSettings | None:
    """Read the central-DP keys of a run config; None when it is off.

    Parameters
    ----------
    config : Mapping
        The run config.
    strategy : str
        The run's strategy (only FedAvg and FedProx take central DP).
    secure : bool
        Whether secure aggregation is on (``max-weight`` is then fixed at 1).

    Raises
    ------
    ConfigError
        One line naming the key: a key without effect, a bad value, or a
        strategy whose aggregate the noise would not cover.

    """
    mode = get_choice(config, "central-dp", "off", CENTRAL_DP_MODES)
    given = [k for k in CENTRAL_DP_KEYS[1:] if k in config]
    if mode == "off":
        if given:
            raise ConfigError(
                f"{given[0]} has no effect with central-dp off; set central-dp = "
                "fixed or adaptive, or drop it"
            )
        return None
    _check_strategy(strategy)
    if secure and "max-weight" in config:
        raise ConfigError(
            "max-weight has no effect with central-dp: every hospital weighs 1 "
            "(SecAgg+ then uses max-weight 1); drop it"
        )
    noise = get_float(
        config, "central-noise-multiplier", DEFAULT_NOISE_MULTIPLIER, positive=True
    )
    delta = get_float(config, "central-delta", DEFAULT_DELTA)
    try:
        check_delta(delta)
    except ConfigError as exc:
        raise ConfigError(f"central-delta: {exc}") from None
    settings = CentralDpSettings(
        mechanism=mode,
        noise_multiplier=noise,
        clipping_norm=get_float(
            config, "central-clipping-norm", DEFAULT_CLIPPING_NORM, positive=True
        ),
        delta=delta,
    )
    if mode == "fixed":
        if adaptive := [k for k in given if k in ADAPTIVE_ONLY]:
            raise ConfigError(
                f"{adaptive[0]} applies to central-dp = adaptive, not fixed; drop it"
            )
        return settings
    return _adaptive(config, settings)


def _check_strategy(strategy: str) -> None:
    if strategy in CENTRAL_DP_STRATEGIES:
        return
    why = (
        "its server optimiser transforms the mean before the noise is added"
        if strategy in ("fedadam", "fedyogi", "fedadagrad")
        else "its aggregate is not the mean of the clipped updates"
    )
    raise ConfigError(
        f"central-dp needs strategy fedavg or fedprox, not {strategy!r}: the noise "
        f"z*C/n covers only the plain mean of the clipped updates, and {why}"
    )


def _adaptive(config: ConfigMapping, fixed: CentralDpSettings) -> CentralDpSettings:
    quantile = get_float(
        config, "target-clipped-quantile", DEFAULT_TARGET_QUANTILE, minimum=0
    )
    if quantile > 1:
        raise ConfigError(f"target-clipped-quantile must be in [0, 1], got {quantile}")
    z = fixed.noise_multiplier
    stddev = get_float(config, "clipped-count-stddev", z, positive=True)
    if z >= 2 * stddev:
        raise ConfigError(
            f"clipped-count-stddev must be above half the central noise multiplier "
            f"({z / 2:g}) for Flower's adaptive clipping, got {stddev:g}"
        )
    return CentralDpSettings(
        mechanism="adaptive",
        noise_multiplier=z,
        clipping_norm=fixed.clipping_norm,
        delta=fixed.delta,
        target_clipped_quantile=quantile,
        clip_norm_lr=get_float(
            config, "clip-norm-lr", DEFAULT_CLIP_NORM_LR, positive=True
        ),
        clipped_count_stddev=stddev,
    )


def central_epsilon(history: RunHistory, delta: float) -> float:
    """The central epsilon of every round in ``history`` that added noise.

    Parameters
    ----------
    history : RunHistory
        The run's rounds (each aggregated round carries its mechanism).
    delta : float
        The delta.

    """
    mechanisms = [
        DpMechanism(
            noise_multiplier=r.central["noise_multiplier"],
            sample_rate=r.central["sample_rate"],
            steps=1,
        )
        for r in history.rounds
        if r.central is not None
    ]
    return epsilon_spent(mechanisms, delta)


def central_summary(
    history: RunHistory, settings: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """``privacy.central`` of ``metrics.json``: the mechanism and its epsilon.

    Parameters
    ----------
    history : RunHistory
        The run's completed rounds.
    settings : Mapping or None
        The run's central-DP settings as ``describe_run`` records them
        (None: central DP off, and so is the summary).

    Returns
    -------
    dict or None
        The settings, the largest sample rate, the rounds that added noise,
        and the epsilon after the last.

    """
    if settings is None:
        return None
    done = [r.central for r in history.rounds if r.central is not None]
    summary: dict[str, Any] = {
        "mechanism": f"{settings['mechanism']} clipping",
        "clipping": "client-side (each hospital clips its own update)",
        "weighting": "uniform: every hospital weighs 1",
        "noise_multiplier": settings["noise_multiplier"],
        "clipping_norm": settings["clipping_norm"],
        "sample_rate": max((c["sample_rate"] for c in done), default=None),
        "delta": settings["delta"],
        "rounds": len(done),
        "epsilon": done[-1]["epsilon"] if done else 0.0,
        "accountant": "RDP of the sampled Gaussian (Opacus's analysis)",
    }
    if settings["mechanism"] == "adaptive":
        summary["last_clipping_norm"] = done[-1]["clipping_norm"] if done else None
        summary["target_clipped_quantile"] = settings["target_clipped_quantile"]
    return summary


class CentralDp(Strategy):
    """Flower's client-side DP wrapper, calibrated and accounted per round.

    Mixed into Flower's wrappers (:func:`central_dp_strategy` builds one),
    it changes only how a round is configured and aggregated; everything
    else is Flower's.

    Attributes
    ----------
    settings : CentralDpSettings
        The mechanism.
    history : RunHistory
        Where each round's mechanism and epsilon are recorded (a resumed
        run's rounds included).
    min_results : int
        Fewest hospitals a round may aggregate.
    secure : bool
        Whether the results arrive securely aggregated (the coordinator
        cannot then check each hospital's clipping).
    sample_rate : float
        This round's hospitals sampled / available.

    """

    settings: CentralDpSettings
    history: RunHistory
    min_results: int
    secure: bool
    sample_rate: float
    clipping_norm: float
    noise_multiplier: float
    num_sampled_clients: int
    _global: Weights

    def _attach(
        self,
        settings: CentralDpSettings,
        history: RunHistory,
        *,
        min_results: int,
        secure: bool,
    ) -> None:
        self.settings = settings
        self.history = history
        self.min_results = min_results
        self.secure = secure
        self.sample_rate = 1.0
        self._global = []
        done = [r.central for r in history.rounds if r.central is not None]
        if done and "next_clipping_norm" in done[-1]:
            self.clipping_norm = done[-1]["next_clipping_norm"]

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        """Ask for clipped updates at unit weight; note the sample rate."""
        self._global = parameters_to_ndarrays(parameters)
        # super() is Flower's wrapper (see the classes below), never Strategy.
        instructions = super().configure_fit(  # type: ignore[safe-super]
            server_round, parameters, client_manager
        )
        available = client_manager.num_available()
        self.sample_rate = min(1.0, len(instructions) / available) if available else 1
        for _, fit_ins in instructions:
            fit_ins.config[Key.CENTRAL_DP] = self.settings.mechanism
        return instructions

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        """Noise the mean of the clipped updates; record the round's epsilon.

        Failures are left out (hospfed's round guard has recorded them):
        Flower's wrappers would drop the whole round for one.
        """
        results = self._screen(server_round, results)
        self.num_sampled_clients = len(results)
        norm = float(self.clipping_norm)
        parameters, metrics = super().aggregate_fit(  # type: ignore[safe-super]
            server_round, results, []
        )
        if parameters is None:
            return parameters, metrics
        applied = max(norm, float(self.clipping_norm))  # Flower noises with it
        std = self.noise_multiplier * applied / len(results)
        parameters = self._top_up(parameters, norm, len(results))
        entry = {
            "noise_multiplier": self.settings.noise_multiplier,
            "sample_rate": self.sample_rate,
            "clipping_norm": norm,
            "noise_std": std,
            "hospitals": float(len(results)),
        }
        if self.settings.mechanism == "adaptive":
            entry["next_clipping_norm"] = float(self.clipping_norm)
            entry["update_noise_multiplier"] = float(self.noise_multiplier)
        record = self.history.round(server_round)
        record.central = entry
        entry["epsilon"] = central_epsilon(self.history, self.settings.delta)
        log(INFO, "round %s: central DP %s", server_round, entry)
        return parameters, metrics

    def _screen(
        self, server_round: int, results: list[tuple[ClientProxy, FitRes]]
    ) -> list[tuple[ClientProxy, FitRes]]:
        """Leave out replies that break the contract (weight 1, norm <= C)."""
        kept = []
        bound = float(self.clipping_norm) * (1 + NORM_TOLERANCE)
        for proxy, res in results:
            problem = None
            if res.num_examples != 1:
                problem = f"reported weight {res.num_examples}, central DP needs 1"
            elif not self.secure:
                norm = update_norm(parameters_to_ndarrays(res.parameters), self._global)
                if norm > bound:
                    problem = f"update norm {norm:.4g} beyond the clipping norm"
            if problem is None:
                kept.append((proxy, res))
                continue
            hospital = hospital_name(proxy, res)
            log(WARNING, "round %s: %s left out: %s", server_round, hospital, problem)
            self.history.round(server_round).declined.append(
                Declined(reason=problem, hospital=hospital, node=proxy.node_id)
            )
        if len(kept) < max(1, self.min_results):
            raise RoundFailedError(
                server_round=server_round,
                phase="train",
                received=len(kept),
                required=self.min_results,
                failures=[d.label() for d in self.history.round(server_round).declined],
            )
        return kept

    def _top_up(self, parameters: Parameters, norm: float, count: int) -> Parameters:
        """Flower noises with the next round's norm: add what a smaller one lacks."""
        after = float(self.clipping_norm)
        if after >= norm:
            return parameters
        z = float(self.noise_multiplier)
        extra = z * math.sqrt(norm**2 - after**2) / count
        arrays = parameters_to_ndarrays(parameters)
        noised = [
            (a + np.random.normal(0.0, extra, a.shape)).astype(a.dtype) for a in arrays
        ]
        return ndarrays_to_parameters(noised)


class _FixedCentralDp(CentralDp, DifferentialPrivacyClientSideFixedClipping):
    """Flower's client-side fixed-clipping wrapper, calibrated per round."""


class _AdaptiveCentralDp(CentralDp, DifferentialPrivacyClientSideAdaptiveClipping):
    """Flower's client-side adaptive-clipping wrapper, calibrated per round."""


def central_dp_strategy(
    strategy: Strategy,
    settings: CentralDpSettings,
    history: RunHistory,
    *,
    min_results: int,
    secure: bool,
) -> CentralDp:
    """Wrap ``strategy`` (FedAvg or FedProx) in Flower's client-side DP wrapper.

    Parameters
    ----------
    strategy : Strategy
        FedAvg or FedProx.
    settings : CentralDpSettings
        The mechanism.
    history : RunHistory
        The run's history: each round's mechanism is recorded there, and a
        resumed run's rounds (adaptive clipping's norm) are read from it.
    min_results : int
        Fewest hospitals a round may aggregate.
    secure : bool
        Whether secure aggregation is on.

    Returns
    -------
    CentralDp
        Flower's ``DifferentialPrivacyClientSideFixedClipping`` or
        ``...AdaptiveClipping`` with :class:`CentralDp`'s calibration.

    """
    wrapped: CentralDp
    hospitals = max(1, min_results)  # set to the results each round
    if settings.mechanism == "fixed":
        wrapped = _FixedCentralDp(
            strategy,
            noise_multiplier=settings.noise_multiplier,
            clipping_norm=settings.clipping_norm,
            num_sampled_clients=hospitals,
        )
    else:
        wrapped = _AdaptiveCentralDp(
            strategy,
            noise_multiplier=settings.noise_multiplier,
            num_sampled_clients=hospitals,
            initial_clipping_norm=settings.clipping_norm,
            target_clipped_quantile=_given(settings.target_clipped_quantile),
            clip_norm_lr=_given(settings.clip_norm_lr),
            clipped_count_stddev=settings.clipped_count_stddev,
        )
    wrapped._attach(settings, history, min_results=min_results, secure=secure)
    return wrapped


def _given(value: float | None) -> float:
    if value is None:
        raise ValueError("adaptive clipping's settings are missing")
    return value
