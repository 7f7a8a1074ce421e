"""Flags that ``hospfed-sim heart`` and ``hospfed-sim run`` share, declared once.

Client-level central DP's flags (run-config keys ``central-dp`` and its
settings; see :mod:`hospfed.server.central_dp`); the validation split,
what rounds score and personalisation (:mod:`hospfed.common.personal`); the
server learning rate. A flag left at ``None`` is not passed on: the
coordinator's default applies.
"""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = [
    "EVALUATION_FLAGS",
    "CentralClipFlag",
    "CentralDeltaFlag",
    "CentralDpFlag",
    "CentralNoiseFlag",
    "ClipLrFlag",
    "CountStddevFlag",
    "DittoLambdaFlag",
    "EvaluateOnFlag",
    "PersonalLrFlag",
    "PersonalStepsFlag",
    "PersonaliseFlag",
    "QuantileFlag",
    "ServerLrFlag",
    "ValidationFractionFlag",
    "ValidationSeedFlag",
]

EVALUATION_FLAGS = (
    "evaluate_on",
    "personalise",
    "personal_learning_rate",
    "personal_steps",
    "ditto_lambda",
)
"""Flags passed on as the run-config keys of the same name (when given)."""

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

ValidationFractionFlag = Annotated[
    float | None,
    typer.Option(
        help="Hold this share of each hospital's training rows out as its "
        "validation set (stratified) [default: none]."
    ),
]
ValidationSeedFlag = Annotated[
    int | None, typer.Option(min=0, help="Seed of the validation split [default: 0].")
]
EvaluateOnFlag = Annotated[
    str | None,
    typer.Option(
        help="What each round scores: test, validation, or validation-then-test "
        "(test once, in the last round) [default: test]."
    ),
]
PersonaliseFlag = Annotated[
    str | None,
    typer.Option(
        help="After the last round each hospital adapts the global model on its "
        "own data: finetune (the last layer) or ditto (every layer, pulled "
        "towards the global model); both are reported [default: none]."
    ),
]
PersonalLrFlag = Annotated[
    float | None,
    typer.Option(help="Personal training's learning rate [default: the client's]."),
]
PersonalStepsFlag = Annotated[
    int | None,
    typer.Option(min=1, help="Personal training's steps [default: --local-steps]."),
]
DittoLambdaFlag = Annotated[
    float | None, typer.Option(help="Ditto's proximal coefficient [default: 0.1].")
]
ServerLrFlag = Annotated[
    float | None,
    typer.Option(help="Server learning rate of FedAdam/FedYogi/FedAdagrad."),
]
