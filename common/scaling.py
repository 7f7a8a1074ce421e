"""Federation-wide standardisation: per-input sums in, one mean and std out.

A task with ``[standardise] by = "federation"`` scales every hospital's
inputs with the same statistics, computed before round 1 from sums and
counts only: each hospital sends :class:`InputSums` of its encoded,
unscaled *training* inputs (row count, per-input sum and sum of squares),
the coordinator combines them (:func:`federation_scaling`) and sends the
resulting :class:`Scaling` with every round. No row leaves a hospital; the
sums do, in the clear (they are not covered by DP-SGD, so a hospital
training with DP refuses to send them), which the README states.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from hospfed.common.errors import ConfigError

__all__ = ["InputSums", "Scaling", "federation_scaling"]


@dataclass(frozen=True)
class InputSums:
    """One hospital's sums over its training inputs (encoded, not scaled).

    Attributes
    ----------
    count : int
        Training rows.
    sums, squares : tuple of float
        Per input: the sum, and the sum of squares, over those rows.

    """

    count: int
    sums: tuple[float, ...]
    squares: tuple[float, ...]

    def to_json(self) -> str:
        """Compact JSON (how the reply carries it)."""
        document = {"count": self.count, "sums": self.sums, "squares": self.squares}
        return json.dumps(document, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, where: str) -> InputSums:
        """Read :meth:`to_json`'s output; ``where`` names the sender in errors.

        Raises
        ------
        ConfigError
            If it is malformed, inconsistent or not finite.

        """
        try:
            document = json.loads(text)
            sums = tuple(float(v) for v in document["sums"])
            squares = tuple(float(v) for v in document["squares"])
            count = int(document["count"])
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"{where}: malformed input sums ({exc!r})") from None
        values = np.asarray(sums + squares)
        if count < 1 or len(sums) != len(squares) or not np.all(np.isfinite(values)):
            raise ConfigError(f"{where}: input sums are inconsistent or not finite")
        return cls(count, sums, squares)


@dataclass(frozen=True)
class Scaling:
    """The statistics every hospital scales its inputs with.

    Attributes
    ----------
    mean, std : tuple of float
        Per input; a constant input has std 1 (it stays at 0 after scaling).

    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_json(self) -> str:
        """Compact JSON (how instructions and results carry it)."""
        return json.dumps({"mean": self.mean, "std": self.std}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Scaling:
        """Read :meth:`to_json`'s output.

        Raises
        ------
        ConfigError
            If it is malformed or not finite, or a std is not positive.

        """
        try:
            document = json.loads(text)
            mean = tuple(float(v) for v in document["mean"])
            std = tuple(float(v) for v in document["std"])
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"malformed scaling ({exc!r})") from None
        if len(mean) != len(std) or not all(
            math.isfinite(m) and math.isfinite(s) and s > 0
            for m, s in zip(mean, std, strict=True)
        ):
            raise ConfigError(
                "scaling must give a finite mean and positive std per input"
            )
        return cls(mean, std)

    def digest(self) -> str:
        """SHA-256 of :meth:`to_json` (tells scalings apart in caches)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()


def federation_scaling(parts: Iterable[InputSums]) -> Scaling:
    """Combine hospitals' sums into the federation's mean and std (ddof 0).

    The same statistics as the pooled training inputs': mean = sum / n,
    variance = sum of squares / n - mean^2 (clamped at 0 against rounding).

    Raises
    ------
    ConfigError
        If no sums are given or they disagree on the number of inputs.

    """
    parts = list(parts)
    if not parts:
        raise ConfigError("no hospital sent its input sums")
    widths = {len(p.sums) for p in parts}
    if len(widths) != 1:
        raise ConfigError(f"hospitals sent sums of {sorted(widths)} inputs")
    count = sum(p.count for p in parts)
    sums = np.sum([p.sums for p in parts], axis=0) / count
    squares = np.sum([p.squares for p in parts], axis=0) / count
    std = np.sqrt(np.maximum(squares - sums**2, 0.0))
    std[std < 1e-12] = 1.0  # a constant input stays 0
    return Scaling(tuple(map(float, sums)), tuple(map(float, std)))
