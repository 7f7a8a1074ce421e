"""Record-level differential privacy: parameters, sampling and accounting.

Both training backends run DP-SGD with Poisson sampling (each training
example joins each step independently with probability ``sample_rate``),
per-example L2 clipping to ``clip_norm`` and Gaussian noise of standard
deviation ``noise_multiplier * clip_norm`` on the clipped sum, which is then
divided by the expected batch size. One mechanism is a
:class:`DpMechanism` (noise multiplier, sample rate, steps), frozen data as
in Google's dp-accounting; a hospital's history of them is its ledger.

Accounting is Opacus's Rényi-DP analysis of the sampled Gaussian mechanism
(Mironov, Talwar, Zhang 2019; ``opacus.accountants.analysis.rdp``), composed
exactly as ``opacus.accountants.RDPAccountant`` does, with its orders, so
the Keras and PyTorch hospitals report the same epsilon for the same
history. The analysis module is loaded by file, not through ``opacus``'s
package ``__init__``, which would import torch (about 5 s) into a Keras
hospital.

Why not Google's dp-accounting (``RdpAccountant``), which is pinned too:
measured here on 276 histories with Opacus's orders, its epsilon equals
Opacus's to 1e-12 only where the best order is an integer; at fractional
orders it sums the series for the sampled Gaussian with every term taken
positive (an upper bound, up to 2x too high against numerical integration,
and ``inf`` at some low orders), so it differs by 1e-6 to 1e-2 typically
and up to 7x at low noise. Opacus's values match numerical integration to
2e-10, and the PyTorch hospitals must report the epsilon Opacus reports.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from hospfed.common.errors import ConfigError, DataError

RDP_ORDERS: tuple[float, ...] = tuple(
    [1 + x / 10.0 for x in range(1, 100)] + [float(a) for a in range(12, 64)]
)
"""Rényi orders, the same as ``opacus.accountants.RDPAccountant.DEFAULT_ALPHAS``."""

MAX_NOISE_MULTIPLIER = 1e6


@dataclass(frozen=True, kw_only=True)
class DpMechanism:
    """``steps`` DP-SGD steps of the Poisson-sampled Gaussian mechanism.

    Parameters
    ----------
    noise_multiplier : float
        Noise standard deviation divided by the clip norm.
    sample_rate : float
        Probability that a given example joins a step.
    steps : int
        Number of steps.

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


def poisson_sample_rate(num_examples: int, batch_size: int) -> float:
    """Return Opacus's sample rate for a data loader: ``1 / ceil(n / batch)``."""
    if num_examples < 1 or batch_size < 1:
        raise ConfigError("sample rate needs >= 1 example and a batch size >= 1")
    return 1.0 / math.ceil(num_examples / batch_size)


def expected_batch_size(num_examples: int, sample_rate: float) -> int:
    """Return Opacus's expected batch size ``int(n * q)`` (at least 1)."""
    return max(1, int(num_examples * sample_rate))


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
        Epsilon; 0 for an empty history.

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
    ``steps``), so a hospital's history, whose rounds repeat a few
    mechanisms, costs one evaluation of the series per distinct mechanism
    rather than one per round (each is about 17 ms).
    """
    rdp = _rdp_analysis().compute_rdp(
        q=sample_rate,
        noise_multiplier=noise_multiplier,
        steps=1,
        orders=list(RDP_ORDERS),
    )
    rdp.setflags(write=False)
    return rdp


def noise_multiplier_for(
    *,
    epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    history: Sequence[DpMechanism] = (),
) -> float:
    """Return the smallest noise multiplier keeping ``steps`` steps within budget.

    ``history`` is what was spent before: the new steps must fit in what it
    leaves of ``epsilon``.

    A bisection on :func:`epsilon_spent`, as Opacus's
    ``get_noise_multiplier`` does (which cannot be imported without torch).

    Raises
    ------
    ConfigError
        If no noise multiplier up to 1e6 reaches the budget.

    """
    check_epsilon(epsilon)

    def too_little(noise: float) -> bool:
        run = DpMechanism(noise_multiplier=noise, sample_rate=sample_rate, steps=steps)
        return epsilon_spent([*history, run], delta) > epsilon

    low, high = 0.0, 10.0
    with warnings.catch_warnings():
        # Candidates far below the answer sit at the edge of the RDP orders.
        warnings.filterwarnings("ignore", message="Optimal order is the")
        while too_little(high):
            low, high = high, 2 * high
            if high > MAX_NOISE_MULTIPLIER:
                raise ConfigError(
                    f"no noise multiplier reaches epsilon {epsilon} at delta "
                    f"{delta} over {steps} steps"
                )
        while high - low > 0.005 * high:
            middle = (low + high) / 2
            low, high = (middle, high) if too_little(middle) else (low, middle)
    return high


def check_epsilon(epsilon: float) -> None:
    """Raise ConfigError unless ``epsilon`` is a positive finite number."""
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise ConfigError(f"epsilon must be > 0, got {epsilon}")


def check_delta(delta: float) -> None:
    """Raise ConfigError unless ``0 < delta < 1``."""
    if not 0 < delta < 1:
        raise ConfigError(f"delta must be in (0, 1), got {delta}")
