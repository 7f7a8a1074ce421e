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
history. It lives in :mod:`hospfed.common.rdp` (the coordinator accounts
client-level central DP with it too); that module loads Opacus's analysis
by file, without importing torch. This module derives the noise and the
sample rate of DP-SGD.

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

import math
import warnings
from collections.abc import Sequence

from hospfed.common.errors import ConfigError
from hospfed.common.rdp import DpMechanism, check_epsilon, epsilon_spent

__all__ = ["expected_batch_size", "noise_multiplier_for", "poisson_sample_rate"]

MAX_NOISE_MULTIPLIER = 1e6


def poisson_sample_rate(num_examples: int, batch_size: int) -> float:
    """Return Opacus's sample rate for a data loader: ``1 / ceil(n / batch)``."""
    if num_examples < 1 or batch_size < 1:
        raise ConfigError("sample rate needs >= 1 example and a batch size >= 1")
    return 1.0 / math.ceil(num_examples / batch_size)


def expected_batch_size(num_examples: int, sample_rate: float) -> int:
    """Return Opacus's expected batch size ``int(n * q)`` (at least 1)."""
    return max(1, int(num_examples * sample_rate))


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
