"""Rényi-DP accounting of the sampled Gaussian mechanism, for both sides.

A hospital accounts its record-level DP-SGD steps with it, and the
coordinator its client-level central DP rounds: one mechanism is a
:class:`DpMechanism` (noise multiplier, sample rate, steps), frozen data as
in Google's dp-accounting, and :func:`epsilon_spent` composes a history of
them exactly as ``opacus.accountants.RDPAccountant`` does, with its orders
and Opacus's own analysis (Mironov, Talwar, Zhang 2019,
``opacus/accountants/analysis/rdp.py``). That module is loaded by file
path, not through ``opacus``'s package ``__init__``, which would import
torch (about 5 s) into a Keras hospital or the coordinator.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from hospfed.common.errors import ConfigError, DataError

__all__ = [
    "RDP_ORDERS",
    "DpMechanism",
    "check_delta",
    "check_epsilon",
    "epsilon_spent",
]

RDP_ORDERS: tuple[float, ...] = tuple(
    [1 + x / 10.0 for x in range(1, 100)] + [float(a) for a in range(12, 64)]
)
"""Rényi orders, the same as ``opacus.accountants.RDPAccountant.DEFAULT_ALPHAS``."""


@dataclass(frozen=True, kw_only=True)
class DpMechanism:
    """``steps`` runs of the Poisson-sampled Gaussian mechanism.

    Parameters
    ----------
    noise_multiplier : float
        Noise standard deviation divided by the sensitivity (the clip norm).
    sample_rate : float
        Probability that a given record (or hospital) joins a step.
    steps : int
        Number of steps (DP-SGD steps, or central-DP rounds).

    """

    noise_multiplier: float
    sample_rate: float
    steps: int

    def __post_init__(self) -> None:
        if not self.noise_multiplier >= 0:
            raise ConfigError(
                f"noise multiplier must be >= 0, got {self.noise_multiplier}"
            )
        if not 0 < self.sample_rate <= 1:
            raise ConfigError(f"sample rate must be in (0, 1], got {self.sample_rate}")
        if self.steps < 0:
            raise ConfigError(f"steps must be >= 0, got {self.steps}")


@cache
def _rdp_analysis() -> ModuleType:
    spec = importlib.util.find_spec("opacus")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("privacy accounting needs the 'opacus' package")
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root / "accountants" / "analysis" / "rdp.py"
    module_spec = importlib.util.spec_from_file_location("_hospfed_opacus_rdp", path)
    if module_spec is None or module_spec.loader is None:
        raise DataError(f"cannot load Opacus's RDP analysis from {path}")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def epsilon_spent(history: Sequence[DpMechanism], delta: float) -> float:
    """Return the epsilon of composing ``history`` at ``delta`` (RDP).

    Parameters
    ----------
    history : sequence of DpMechanism
        Every mechanism run so far.
    delta : float
        Target delta, in (0, 1).

    Returns
    -------
    float
        Epsilon; 0 for an empty history, infinity if a mechanism had no noise.

    """
    check_delta(delta)
    live = [m for m in history if m.steps > 0]
    if not live:
        return 0.0
    if any(m.noise_multiplier == 0 for m in live):
        return math.inf
    rdp: Any = sum(
        _rdp_per_step(m.sample_rate, m.noise_multiplier) * m.steps for m in live
    )
    eps, _ = _rdp_analysis().get_privacy_spent(
        orders=list(RDP_ORDERS), rdp=rdp, delta=delta
    )
    return float(eps)


@cache
def _rdp_per_step(sample_rate: float, noise_multiplier: float) -> Any:
    """One step's RDP at every order (Opacus's ``compute_rdp`` with ``steps=1``).

    ``compute_rdp`` is linear in the steps (it returns one step's RDP times
    ``steps``), so a history whose steps repeat a few mechanisms costs one
    evaluation of the series per distinct mechanism rather than one per
    round (each is about 17 ms).
    """
    rdp = _rdp_analysis().compute_rdp(
        q=sample_rate,
        noise_multiplier=noise_multiplier,
        steps=1,
        orders=list(RDP_ORDERS),
    )
    rdp.setflags(write=False)
    return rdp


def check_epsilon(epsilon: float) -> None:
    """Raise ConfigError unless ``epsilon`` is a positive finite number."""
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise ConfigError(f"epsilon must be > 0, got {epsilon}")


def check_delta(delta: float) -> None:
    """Raise ConfigError unless ``0 < delta < 1``."""
    if not 0 < delta < 1:
        raise ConfigError(f"delta must be in (0, 1), got {delta}")
