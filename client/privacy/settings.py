"""A hospital's DP-SGD settings, and how a backend runs one private round.

:class:`PrivacySettings` is the hospital's own choice (budget, clip norm,
noise), read once from its node config; :class:`DpStep` is what a training
backend is told for one round. Both are keyword-only so that numbers of the
same type cannot be swapped by position, as in Opacus's ``make_private``.
"""

from __future__ import annotations

import math
import secrets
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hospfed.common.config import get_float, get_int
from hospfed.common.errors import ConfigError
from hospfed.common.rdp import check_delta, check_epsilon

__all__ = ["DpStep", "InsecureRandomnessWarning", "PrivacySettings"]


class InsecureRandomnessWarning(UserWarning):
    """DP noise or sampling is drawn from a fixed seed: fine for tests only."""


@dataclass(frozen=True, kw_only=True)
class DpStep:
    """How one backend runs DP-SGD for one round (the hospital's choice).

    Parameters
    ----------
    noise_multiplier : float
        Noise standard deviation divided by ``clip_norm``.
    clip_norm : float
        Per-example L2 gradient bound.
    sample_rate : float
        Poisson sampling probability per example and step.
    noise_seed : int or None
        None draws noise and sampling from the OS CSPRNG (the default); a
        fixed seed is for tests and warns.

    """

    noise_multiplier: float
    clip_norm: float
    sample_rate: float
    noise_seed: int | None = None

    def entropy(self) -> int:
        """Return a seed for this round's noise and sampling.

        A fixed ``noise_seed`` warns with :class:`InsecureRandomnessWarning`.
        """
        if self.noise_seed is None:
            return secrets.randbits(63)
        warnings.warn(
            "DP-SGD noise and sampling use a fixed seed: the privacy guarantee "
            "does not hold against anyone who knows it; never do this for real data",
            InsecureRandomnessWarning,
            stacklevel=2,
        )
        return self.noise_seed


@dataclass(frozen=True, kw_only=True)
class PrivacySettings:
    """A hospital's own DP settings, from its node config.

    Keyword-only so budget numbers cannot be swapped by position.

    Parameters
    ----------
    epsilon, delta : float
        The budget for the whole life of the federation at this hospital.
    clip_norm : float
        Per-example gradient bound.
    noise_multiplier : float or None
        Fixed noise; None derives it from the budget and ``planned_rounds``.
    planned_rounds : int
        Rounds the budget should last when the noise is derived.
    noise_seed : int or None
        Fixed seed (tests only; warns); None uses the OS CSPRNG.

    """

    epsilon: float
    delta: float
    clip_norm: float = 1.0
    noise_multiplier: float | None = None
    planned_rounds: int = 15
    noise_seed: int | None = None

    def __post_init__(self) -> None:
        check_epsilon(self.epsilon)
        check_delta(self.delta)
        if not (math.isfinite(self.clip_norm) and self.clip_norm > 0):
            raise ConfigError(f"clip-norm must be > 0, got {self.clip_norm}")
        if self.noise_multiplier is not None and not self.noise_multiplier >= 0:
            raise ConfigError(
                f"noise-multiplier must be >= 0, got {self.noise_multiplier}"
            )
        if self.planned_rounds < 1:
            raise ConfigError(f"dp-rounds must be >= 1, got {self.planned_rounds}")

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> PrivacySettings | None:
        """Read DP settings from a node config; None when ``epsilon`` is absent.

        Keys: ``epsilon``, ``delta`` (default 1e-3), ``clip-norm`` (1.0),
        ``noise-multiplier`` (derived), ``dp-rounds`` (15),
        ``dp-insecure-seed`` (tests only).
        """
        if "epsilon" not in config or str(config["epsilon"]).strip() == "":
            return None
        noise = config.get("noise-multiplier")
        seed = config.get("dp-insecure-seed")
        return cls(
            epsilon=get_float(config, "epsilon", 0.0),
            delta=get_float(config, "delta", 1e-3),
            clip_norm=get_float(config, "clip-norm", 1.0),
            noise_multiplier=None
            if noise is None
            else get_float(config, "noise-multiplier", 0.0),
            planned_rounds=get_int(config, "dp-rounds", 15, minimum=1),
            noise_seed=None
            if seed is None
            else get_int(config, "dp-insecure-seed", 0, minimum=0),
        )

    def describe(self) -> str:
        """One line for logs (no data, only the settings)."""
        noise = (
            "derived" if self.noise_multiplier is None else f"{self.noise_multiplier:g}"
        )
        return (
            f"DP-SGD epsilon {self.epsilon:g}, delta {self.delta:g}, clip norm "
            f"{self.clip_norm:g}, noise multiplier {noise}"
        )
