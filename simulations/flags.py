"""Flags that ``hospfed-sim heart`` and ``hospfed-sim run`` share, declared once.

Client-level central DP's flags (run-config keys ``central-dp`` and its
settings; see :mod:`hospfed.server.central_dp`). A flag left at ``None``
is not passed on: the coordinator's default applies.
"""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = [
    "CentralClipFlag",
    "CentralDeltaFlag",
    "CentralDpFlag",
    "CentralNoiseFlag",
    "ClipLrFlag",
    "CountStddevFlag",
    "QuantileFlag",
]

CentralDpFlag = Annotated[
    str,
    typer.Option(
        help="Client-level central DP: off, fixed or adaptive clipping (each "
        "hospital clips its update, the coordinator noises the mean; "
        "fedavg or fedprox)."
    ),
]
CentralNoiseFlag = Annotated[
    float | None,
    typer.Option(help="Central DP noise multiplier z [default: 1.0]."),
]
CentralClipFlag = Annotated[
    float | None,
    typer.Option(
        help="Central DP clipping norm of an update (adaptive: the initial "
        "one) [default: 0.5]."
    ),
]
CentralDeltaFlag = Annotated[
    float | None,
    typer.Option(help="Delta of the central epsilon [default: 1e-3]."),
]
QuantileFlag = Annotated[
    float | None,
    typer.Option(help="Adaptive clipping's target [default: 0.5]."),
]
ClipLrFlag = Annotated[
    float | None,
    typer.Option(help="Adaptive clipping's learning rate [default: 0.2]."),
]
CountStddevFlag = Annotated[
    float | None,
    typer.Option(help="Adaptive clipping's noise on the clipped count [default: z]."),
]
