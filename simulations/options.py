"""What ``hospfed-sim heart`` is asked to do, checked before any work.

:func:`plan_heart` turns the command's flags into a :class:`HeartPlan`, or
refuses them with a one-line :class:`~hospfed.common.errors.ConfigError`
naming the problem and the fix:

- a flag that has no effect in the chosen mode (with ``--pooled``:
  ``--rounds``, ``--strategy``, ``--min-hospitals``, ``--backend``,
  ``--epsilon``, ``--delta``, ``--clip-norm``, ``--state-dir``,
  ``--local-steps``, ``--resume``, ``--secure-aggregation``, ``--verbose``,
  ``--central-dp`` and its settings;
  without it: ``--epochs``;
  without ``--epsilon``: ``--delta``, ``--clip-norm``, ``--state-dir``; with
  ``--resume``: ``--out`` naming another directory);
- an output or state directory the system will not let us write (really
  probed: :func:`~hospfed.common.files.check_output_dir`);
- an output directory holding an unfinished run that could be resumed
  (resume it instead, or choose another directory);
- with ``--resume DIR``: no or an unreadable checkpoint, settings that
  differ from the checkpoint's (config hash; flags not given are taken
  from the checkpoint), a private run whose ledgers were temporary (its
  hospitals would spend their budget twice), or no rounds left.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import typer
from click.core import ParameterSource

from hospfed.client.privacy import PrivacySettings
from hospfed.common.datasets import FED_HEART_TASK
from hospfed.common.datasets.heart import HOSPITALS
from hospfed.common.errors import ConfigError, DataError
from hospfed.common.files import check_output_dir
from hospfed.common.task import LearningTask
from hospfed.server.checkpoint import (
    CHECKPOINT_FILE,
    Checkpoint,
    check_same_config,
    load_checkpoint,
    run_identity,
)
from hospfed.server.config import RunConfig
from hospfed.simulations.flags import EVALUATION_FLAGS
from hospfed.simulations.heart import hospital_backends

__all__ = ["HeartPlan", "plan_heart", "simulation_settings"]

CENTRAL_FLAGS = (
    "central_noise_multiplier",
    "central_clipping_norm",
    "central_delta",
    "target_clipped_quantile",
    "clip_norm_lr",
    "clipped_count_stddev",
)
"""Client-level central DP's flags besides ``--central-dp`` (run-config keys)."""
NOT_POOLED = (
    "rounds",
    "strategy",
    "min_hospitals",
    "backend",
    "epsilon",
    "delta",
    "clip_norm",
    "state_dir",
    "local_steps",
    "resume",
    "secure_aggregation",
    "verbose",
    "central_dp",
    *CENTRAL_FLAGS,
    *EVALUATION_FLAGS,
    "validation_fraction",
    "validation_seed",
    "server_learning_rate",
    "learning_rate",
)
"""Flags that have no effect with ``--pooled``."""
POOLED_ONLY = ("epochs",)
PRIVATE_ONLY = ("delta", "clip_norm", "state_dir")
"""Flags that have no effect without ``--epsilon``."""
SCENARIO = "fed-heart-disease"


def explicit_flags(ctx: typer.Context) -> set[str]:
    """The parameters of a command given on its command line (not defaults)."""
    return {
        name
        for name in ctx.params
        if ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)
    }


def flag(name: str) -> str:
    """The command-line flag of a parameter name: ``clip_norm`` -> ``--clip-norm``."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True, kw_only=True)
class HeartPlan:
    """A checked ``hospfed-sim heart`` run.

    Attributes
    ----------
    config : RunConfig
        The coordinator's run configuration (its ``out_dir`` is set).
    pooled : bool
        The centralised reference instead of a federation.
    epochs : int
        Epochs of the pooled reference.
    backend : str
        ``keras``, ``torch`` or ``mixed``.
    privacy : PrivacySettings or None
        Every hospital's DP settings (planned over the rounds left).
    state_dir : Path or None
        Where the hospitals' ledgers persist (``--state-dir``, absolute);
        None keeps them in the temporary workspace.
    resume : Checkpoint or None
        The checkpoint to continue.
    settings : dict
        The simulation's settings, recorded and hashed with the config.
    verbose : bool
        Show Flower's and Ray's logs.
    input_sums : bool
        The hospitals answer the sums query of a task standardised by
        federation.
    can_resume : bool
        Whether the command offers ``--resume`` (``hospfed-sim run`` does
        not).

    """

    config: RunConfig
    pooled: bool = False
    epochs: int = 50
    backend: str = "keras"
    privacy: PrivacySettings | None = None
    state_dir: Path | None = None
    resume: Checkpoint | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    verbose: bool = False
    input_sums: bool = False
    can_resume: bool = True

    @property
    def out_dir(self) -> Path:
        """The results directory."""
        assert self.config.out_dir is not None
        return self.config.out_dir

    @property
    def done(self) -> int:
        """Rounds completed before this run starts."""
        return 0 if self.resume is None else self.resume.completed_rounds

    @property
    def resumable(self) -> bool:
        """Whether an interruption of this run can be resumed."""
        return self.can_resume and (self.privacy is None or self.state_dir is not None)


def privacy_targets(privacy: PrivacySettings | None) -> dict[str, float] | None:
    """Every hospital's DP targets as recorded in the run's settings."""
    if privacy is None:
        return None
    return {
        "epsilon": privacy.epsilon,
        "delta": privacy.delta,
        "clip_norm": privacy.clip_norm,
    }


def simulation_settings(
    backend: str, privacy: PrivacySettings | None, state_dir: Path | None
) -> dict[str, Any]:
    """The simulation's own settings: backends, privacy targets, ledger place.

    Parameters
    ----------
    backend : str
        ``keras``, ``torch`` or ``mixed``.
    privacy : PrivacySettings or None
        Every hospital's DP settings.
    state_dir : Path or None
        Where the ledgers persist.

    Returns
    -------
    dict
        JSON-ready; part of the run's config hash.

    """
    return {
        "scenario": SCENARIO,
        "backend": backend,
        "backends": hospital_backends(HOSPITALS, backend),
        "privacy": privacy_targets(privacy),
        "state_dir": None if state_dir is None else str(state_dir),
    }


def plan_heart(values: Mapping[str, Any], explicit: set[str]) -> HeartPlan:
    """Check the flags of ``hospfed-sim heart`` and resolve a resume.

    Parameters
    ----------
    values : Mapping
        Every parameter of the command by name (defaults filled in).
    explicit : set of str
        The parameters given on the command line.

    Returns
    -------
    HeartPlan
        The run to do.

    Raises
    ------
    ConfigError
        Naming the problem and the fix (see the module docstring).

    """
    values = dict(values)
    pooled = bool(values["pooled"])
    _refuse(explicit, NOT_POOLED if pooled else POOLED_ONLY, pooled=pooled)
    resume = None
    if values["resume"] is not None:
        resume = _resume(values, explicit)
    if values["epsilon"] is None:
        for name in PRIVATE_ONLY:
            if name in explicit:
                raise ConfigError(
                    f"{flag(name)} has no effect without --epsilon (the run is "
                    f"non-private); add --epsilon E, or drop {flag(name)}"
                )
    secure = bool(values["secure_aggregation"]) and not pooled
    if secure and int(values["min_hospitals"]) < 2:
        raise ConfigError(
            "secure aggregation needs at least 2 hospitals per round (SecAgg+ "
            f"masks each update with the others'); --min-hospitals is "
            f"{values['min_hospitals']}: raise it to 2 or more, or add "
            "--no-secure-aggregation"
        )
    name = "pooled" if pooled else str(values["strategy"]).strip().lower()
    out = Path(values["out"] or Path("results") / f"heart-{name}")
    config = RunConfig.from_mapping(
        {
            "num-rounds": values["rounds"],
            "strategy": values["strategy"],
            "seed": values["seed"],
            "min-hospitals": values["min_hospitals"],
            "local-steps": values["local_steps"],
            "model-hidden": values.get("hidden") or "",
            "out-dir": str(out),
            "secure-aggregation": secure,
            **central_keys(values),
            **evaluation_keys(values),
        },
        task=validation_task(FED_HEART_TASK, values),
    )
    check_output_dir(out)
    if pooled:
        return HeartPlan(config=config, pooled=True, epochs=int(values["epochs"]))
    if config.min_hospitals > len(HOSPITALS):
        raise ConfigError(
            f"min-hospitals is {config.min_hospitals} but the simulation has "
            f"only {len(HOSPITALS)} hospitals"
        )
    done = 0 if resume is None else resume.completed_rounds
    privacy = None
    if values["epsilon"] is not None:
        privacy = PrivacySettings(
            epsilon=values["epsilon"],
            delta=values["delta"],
            clip_norm=values["clip_norm"],
            planned_rounds=dp_rounds(config, max(1, config.num_rounds - done)),
        )
    state_dir = None
    if values["state_dir"] is not None:
        state_dir = Path(values["state_dir"]).expanduser().absolute()
        check_output_dir(state_dir, what="state dir")
    settings = simulation_settings(str(values["backend"]), privacy, state_dir)
    plan = HeartPlan(
        config=config,
        backend=str(values["backend"]),
        privacy=privacy,
        state_dir=state_dir,
        resume=resume,
        settings=settings,
        verbose=bool(values["verbose"]),
    )
    if resume is None:
        _refuse_unfinished(out)
    else:
        _check_resume(plan, resume)
    return plan


def evaluation_keys(values: Mapping[str, Any]) -> dict[str, Any]:
    """The run-config keys of the evaluation and personalisation flags given."""
    keys = {
        name.replace("_", "-"): values[name]
        for name in EVALUATION_FLAGS
        if values.get(name) is not None
    }
    if values.get("server_learning_rate") is not None:
        keys["server-learning-rate"] = values["server_learning_rate"]
    if values.get("learning_rate") is not None:
        keys["learning-rate"] = values["learning_rate"]
    return keys


def validation_task(task: LearningTask, values: Mapping[str, Any]) -> LearningTask:
    """``task`` with the validation split the flags ask for (if any).

    Raises
    ------
    ConfigError
        For ``--validation-seed`` without ``--validation-fraction``, or a
        fraction outside (0, 1).

    """
    fraction, seed = values.get("validation_fraction"), values.get("validation_seed")
    if fraction is None:
        if seed is not None:
            raise ConfigError(
                "--validation-seed has no effect without --validation-fraction"
            )
        return task
    return with_validation(task, fraction, seed or 0)


def with_validation(task: LearningTask, fraction: float, seed: int) -> LearningTask:
    """``task`` with a validation set of ``fraction`` of each hospital's training rows.

    Raises
    ------
    ConfigError
        If ``fraction`` is not in (0, 1).

    """
    if not 0 < fraction < 1:
        raise ConfigError(f"--validation-fraction must be in (0, 1), got {fraction}")
    split = replace(task.split, validation_fraction=fraction, validation_seed=seed)
    return replace(task, split=split)


def dp_rounds(config: RunConfig, rounds: int) -> int:
    """Rounds a DP budget must last: ``rounds``, plus personal training's share.

    Personal training runs DP-SGD with the rounds' noise; the noise is
    derived for whole rounds, so its steps count as the rounds they fill.
    """
    if config.personal is None:
        return rounds
    return rounds + math.ceil(config.personal.local_steps / config.train.local_steps)


def central_keys(values: Mapping[str, Any]) -> dict[str, Any]:
    """The run-config keys of client-level central DP that were given."""
    if str(values.get("central_dp") or "off") == "off" and not any(
        values.get(name) is not None for name in CENTRAL_FLAGS
    ):
        return {}
    keys = {"central-dp": values.get("central_dp") or "off"}
    for name in CENTRAL_FLAGS:
        if values.get(name) is not None:
            keys[name.replace("_", "-")] = values[name]
    return keys


def _recorded_central(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The central-DP flags a checkpoint's settings stand for."""
    recorded: dict[str, Any] = {"central_dp": "off"}
    recorded |= {name: None for name in CENTRAL_FLAGS}
    if not settings:
        return recorded
    recorded["central_dp"] = settings["mechanism"]
    for name in CENTRAL_FLAGS:
        field_name = name.removeprefix("central_")
        if settings.get(field_name) is not None:
            recorded[name] = settings[field_name]
    return recorded


def _refuse(explicit: set[str], names: tuple[str, ...], *, pooled: bool) -> None:
    for name in names:
        if name not in explicit:
            continue
        if pooled:
            raise ConfigError(
                f"{flag(name)} has no effect with --pooled (the pooled reference "
                "trains --epochs epochs centrally, on Keras, without DP); drop it"
            )
        raise ConfigError(
            f"{flag(name)} has no effect without --pooled (a federated run lasts "
            "--rounds rounds); drop it"
        )


def _resume(values: dict[str, Any], explicit: set[str]) -> Checkpoint:
    """Load the checkpoint; take every flag not given from it."""
    run_dir = Path(values["resume"])
    if "out" in explicit and Path(values["out"]).resolve() != run_dir.resolve():
        raise ConfigError(
            "--out has no effect with --resume (the results go to the resumed "
            "run's directory); drop it"
        )
    try:
        checkpoint = load_checkpoint(run_dir)
    except DataError as exc:
        raise ConfigError(f"cannot resume {run_dir}: {exc}") from None
    try:
        identity, sim = checkpoint.identity, checkpoint.identity["settings"]
        privacy = sim["privacy"] or {}
        recorded = {
            "strategy": identity["strategy"],
            "seed": identity["seed"],
            "min_hospitals": identity["min_hospitals"],
            "local_steps": identity["train"]["local_steps"],
            "hidden": ",".join(map(str, identity["model"]["hidden"])),
            "backend": sim["backend"],
            "epsilon": privacy.get("epsilon"),
            "delta": privacy.get("delta", values["delta"]),
            "clip_norm": privacy.get("clip_norm", values["clip_norm"]),
            "state_dir": sim["state_dir"],
            "rounds": checkpoint.num_rounds,
            "secure_aggregation": identity.get("secure_aggregation") is not None,
            **_recorded_central(identity.get("central_dp")),
        }
        if sim["scenario"] != SCENARIO:
            raise KeyError("scenario")
    except (KeyError, TypeError, AttributeError):
        raise ConfigError(
            f"cannot resume {run_dir}: its checkpoint was not written by "
            "hospfed-sim heart"
        ) from None
    for name, value in recorded.items():
        if name not in explicit:
            values[name] = value
    values["out"] = run_dir
    return checkpoint


def _check_resume(plan: HeartPlan, checkpoint: Checkpoint) -> None:
    where = f"cannot resume {plan.out_dir}"
    sim = checkpoint.identity["settings"]
    if sim["privacy"] is not None and sim["state_dir"] is None:
        raise ConfigError(
            f"{where}: it is a private run whose privacy ledgers were temporary "
            "(no --state-dir), so resuming it would spend the hospitals' budget "
            "twice; start it again, with --state-dir to make it resumable"
        )
    try:
        check_same_config(checkpoint, run_identity(plan.config, plan.settings))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if checkpoint.completed_rounds >= plan.config.num_rounds:
        raise ConfigError(
            f"{where}: it has completed {checkpoint.completed_rounds} rounds "
            f"already (asked: {plan.config.num_rounds}); pass --rounds N with N > "
            f"{checkpoint.completed_rounds} to train further"
        )


def _refuse_unfinished(out: Path) -> None:
    if not (out / CHECKPOINT_FILE).is_file():
        return
    try:
        checkpoint = load_checkpoint(out)
    except (ConfigError, DataError) as exc:
        raise ConfigError(
            f"{out} holds a checkpoint that cannot be read ({exc}); choose another "
            "--out, or delete it"
        ) from None
    settings = checkpoint.identity.get("settings") or {}
    if settings.get("privacy") and not settings.get("state_dir"):
        return  # a private run with temporary ledgers cannot be resumed anyway
    if checkpoint.status != "complete":
        raise ConfigError(
            f"{out} holds an unfinished run ({checkpoint.status} after round "
            f"{checkpoint.completed_rounds} of {checkpoint.num_rounds}): resume it "
            f"with --resume {out}, or choose another --out"
        )
