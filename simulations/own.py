"""What ``hospfed-sim run`` is asked to do, checked before any work.

``hospfed-sim run --task TASK`` runs a federation over the user's own data
(see :mod:`~hospfed.simulations.sites` for the four ways to give the
hospitals). :func:`plan_run` checks every flag first and refuses, with a
one-line :class:`~hospfed.common.errors.ConfigError`:

- no way, or two ways, of giving the hospitals; flags of another way
  (``--split-by`` without ``--data``, ``--partition`` with ``--site``, ...);
- a task that does not read the schema (``--schema``: the raw-export
  contract, by default ``TASK_SCHEMA-raw``: the built-in name or a file);
- flags that have no effect (as ``hospfed-sim heart``: ``--epochs`` without
  ``--pooled``, DP flags without ``--epsilon``, ...);
- fewer than 2 hospitals, ``--min-hospitals`` above the hospitals sampled
  per round.

Resuming (``--resume``) and persistent ledgers (``--state-dir``) are
``hospfed-sim heart``'s only; a ``run`` is started again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hospfed.client.privacy import PrivacySettings
from hospfed.client.raw import read_raw_export
from hospfed.common.datasets import resolve_schema, resolve_task
from hospfed.common.errors import ConfigError
from hospfed.common.files import check_output_dir
from hospfed.common.schema import DatasetSchema
from hospfed.common.task import LearningTask
from hospfed.server.config import RunConfig
from hospfed.simulations.heart import hospital_backends
from hospfed.simulations.options import (
    NOT_POOLED,
    PRIVATE_ONLY,
    HeartPlan,
    central_keys,
    dp_rounds,
    evaluation_keys,
    flag,
    privacy_targets,
    validation_task,
)
from hospfed.simulations.sites import (
    SiteFile,
    parse_sites,
    partition_rows,
    split_by_column,
)
from hospfed.simulations.synthetic import synthetic_rows, synthetic_schema

__all__ = ["OwnPlan", "plan_run"]

_WAYS = {
    "site": "--site",
    "split": "--data with --split-by",
    "partition": "--data with --hospitals",
    "synthetic": "--synthetic with --hospitals",
}
_POOLED_NOT = (
    *(name for name in NOT_POOLED if name not in ("state_dir", "resume")),
    "fraction_fit",
    "learning_rate",
)
_PRIVATE_ONLY = tuple(name for name in PRIVATE_ONLY if name != "state_dir")


@dataclass(frozen=True, kw_only=True)
class OwnPlan:
    """A checked ``hospfed-sim run``.

    Attributes
    ----------
    run : HeartPlan
        The federation's settings (config, backends, privacy, ...), the
        same record ``hospfed-sim heart`` uses.
    task : LearningTask
        The federation's task.
    schema : DatasetSchema
        The raw-export schema every hospital prepares under.
    files : list of SiteFile
        Hospitals given as files.
    frames : dict
        Virtual hospitals' raw rows, by name.
    k : int or None
        ``prepare``'s k-anonymity level.
    title : str
        Shown and recorded.

    """

    run: HeartPlan
    task: LearningTask
    schema: DatasetSchema
    files: list[SiteFile] = field(default_factory=list)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    k: int | None = None
    title: str = ""

    @property
    def hospitals(self) -> list[str]:
        """Every hospital, in the order they are prepared."""
        return [f.hospital for f in self.files] + sorted(self.frames)


def _way(values: Mapping[str, Any]) -> str:
    given = [
        name
        for name, present in (
            ("site", bool(values["site"])),
            ("split", values["data"] is not None and values["split_by"] is not None),
            ("partition", values["data"] is not None and values["split_by"] is None),
            ("synthetic", values["synthetic"] is not None),
        )
        if present
    ]
    if len(given) != 1:
        ways = "; ".join(_WAYS.values())
        what = "no" if not given else "more than one"
        raise ConfigError(f"{what} way of giving the hospitals; use one of: {ways}")
    return given[0]


def _refuse_foreign(way: str, values: Mapping[str, Any], explicit: set[str]) -> None:
    belongs = {
        "key": "site",
        "split_by": "split",
        "partition": ("partition", "synthetic"),
        "alpha": ("partition", "synthetic"),
        "hospitals": ("partition", "synthetic"),
    }
    for name, ways in belongs.items():
        if name in explicit and way not in ways:
            raise ConfigError(f"{flag(name)} has no effect with {_WAYS[way]}; drop it")
    if "alpha" in explicit and values["partition"] != "dirichlet":
        raise ConfigError("--alpha applies to --partition dirichlet only; drop it")
    if way in ("partition", "synthetic") and values["hospitals"] is None:
        raise ConfigError(f"{_WAYS[way]}: give the number of virtual hospitals")


def _schema(values: Mapping[str, Any], task: LearningTask, way: str) -> DatasetSchema:
    if way == "synthetic":
        if values["schema"] is not None:
            raise ConfigError(
                "--schema has no effect with --synthetic (synthetic rows follow "
                "the task's own columns); drop it"
            )
        return synthetic_schema(task)
    name = values["schema"] or f"{task.schema}-raw"
    schema = resolve_schema(str(name))
    if schema.deidentified().name != task.schema:
        raise ConfigError(
            f"--schema {name}: it de-identifies to {schema.deidentified().name!r}, "
            f"but task {task.name!r} reads {task.schema!r}"
        )
    return schema


def _hospital_rows(
    way: str, values: Mapping[str, Any], task: LearningTask, schema: DatasetSchema
) -> dict[str, pd.DataFrame]:
    seed = int(values["seed"])
    if way == "site":
        return {}
    if way == "synthetic":
        table = synthetic_rows(task, int(values["synthetic"]), seed=seed)
    else:
        table = _read_table(Path(values["data"]), schema, values["split_by"])
    if way == "split":
        return split_by_column(table, str(values["split_by"]))
    return partition_rows(
        table,
        int(values["hospitals"]),
        partition=str(values["partition"]),
        seed=seed,
        label=task.label.column,
        alpha=float(values["alpha"]),
    )


def _read_table(
    path: Path, schema: DatasetSchema, split_by: str | None
) -> pd.DataFrame:
    """Read a multi-centre table; the site column is checked as a schema column."""
    if not path.is_file():
        raise ConfigError(f"--data {path}: no such file")
    frame = read_raw_export(path, schema)
    if split_by is not None and split_by not in schema.column_names:
        raise ConfigError(
            f"--split-by {split_by!r}: not a column of schema {schema.name!r}; "
            'declare it (e.g. role = "partition", deid = "drop")'
        )
    return frame


def plan_run(values: Mapping[str, Any], explicit: set[str]) -> OwnPlan:
    """Check the flags of ``hospfed-sim run``; load or draw the hospitals' rows.

    Raises
    ------
    ConfigError
        Naming the problem and the fix (see the module docstring).
    DataError
        If a table cannot be read or split.

    """
    pooled = bool(values["pooled"])
    for name in _POOLED_NOT if pooled else ("epochs",):
        if name in explicit:
            raise ConfigError(
                f"{flag(name)} has no effect {'with' if pooled else 'without'} "
                "--pooled; drop it"
            )
    if values["epsilon"] is None:
        for name in _PRIVATE_ONLY:
            if name in explicit:
                raise ConfigError(f"{flag(name)} has no effect without --epsilon")
    way = _way(values)
    _refuse_foreign(way, values, explicit)
    task = validation_task(resolve_task(str(values["task"])), values)
    if task.standardise == "federation" and values["epsilon"] is not None:
        raise ConfigError(
            f"task {task.name!r} standardises by federation: each hospital would "
            "send exact sums of its training inputs, which DP-SGD does not "
            "cover, so private hospitals refuse; drop --epsilon, or use a task "
            'with [standardise] by = "hospital"'
        )
    schema = _schema(values, task, way)
    files = parse_sites(values["site"] or (), values["key"] or ())
    frames = _hospital_rows(way, values, task, schema)
    if "k" in explicit and not frames and all(f.prepared for f in files):
        raise ConfigError(
            "--k has no effect: every hospital is a prepared .hfd file, prepared "
            "already; drop it"
        )
    count = len(files) + len(frames)
    if count < 2:
        raise ConfigError(f"a federation needs at least 2 hospitals, got {count}")
    config = _config(values, task, schema, count, pooled=pooled)
    check_output_dir(config.out_dir or Path("."))
    backend = str(values["backend"])
    names = [f.hospital for f in files] + sorted(frames)
    privacy = None
    if values["epsilon"] is not None:
        privacy = PrivacySettings(
            epsilon=values["epsilon"],
            delta=values["delta"],
            clip_norm=values["clip_norm"],
            planned_rounds=dp_rounds(config, config.num_rounds),
        )
    settings = {
        "scenario": "own-data",
        "task": task.name,
        "hospitals": len(names),
        "backend": backend,
        "backends": hospital_backends(names, backend),
        "privacy": privacy_targets(privacy),
        "sources": way,
    }
    plan = HeartPlan(
        config=config,
        pooled=pooled,
        epochs=int(values["epochs"]),
        backend=backend,
        privacy=privacy,
        settings=settings,
        verbose=bool(values["verbose"]),
        input_sums=task.standardise == "federation",
        can_resume=False,
    )
    k = values.get("k")
    title = f"{task.name}: {len(names)} hospitals"
    return OwnPlan(
        run=plan,
        task=task,
        schema=schema,
        files=files,
        frames=frames,
        k=None if k is None else int(k),
        title=title,
    )


def _config(
    values: Mapping[str, Any],
    task: LearningTask,
    schema: DatasetSchema,
    hospitals: int,
    *,
    pooled: bool,
) -> RunConfig:
    fraction = float(values["fraction_fit"])
    sampled = max(1, math.floor(hospitals * fraction)) if fraction < 1 else hospitals
    secure = bool(values["secure_aggregation"]) and not pooled
    minimum = values["min_hospitals"]
    if minimum is None:
        minimum = max(sampled, 2) if secure else sampled
    if int(minimum) > sampled:
        raise ConfigError(
            f"{'--min-hospitals' if values['min_hospitals'] else 'secure aggregation'}"
            f" needs {minimum} hospitals per round, more than the {sampled} sampled "
            f"(--fraction-fit {fraction} of {hospitals}); raise --fraction-fit"
        )
    name = "pooled" if pooled else str(values["strategy"]).strip().lower()
    out = Path(values["out"] or Path("results") / f"{task.name}-{name}")
    return RunConfig.from_mapping(
        raw_schema=schema,
        task=task,
        config={
            "num-rounds": values["rounds"],
            "strategy": values["strategy"],
            "seed": values["seed"],
            "min-hospitals": int(minimum),
            "local-steps": values["local_steps"],
            "model-hidden": values.get("hidden") or "",
            "out-dir": str(out),
            "secure-aggregation": secure,
            **(_secagg_sizes(sampled) if secure else {}),
            **central_keys(values),
            **evaluation_keys(values),
            "fraction-fit": fraction,
            "fraction-evaluate": fraction,
        },
    )


def _secagg_sizes(sampled: int) -> dict[str, int]:
    """SecAgg+ shares and threshold when fewer than 4 hospitals are sampled.

    From 4 hospitals on, the defaults apply (4 shares, raised to 5 on the way
    to Flower by :func:`~hospfed.server.secagg.protocol_shares`, threshold
    3): each hospital shares with at most its 4 nearest neighbours, so its
    cost stays flat as the federation grows. With 2 or 3 every hospital
    shares with every other, and the threshold must stay below the count.
    """
    if sampled >= 4:
        return {}
    return {"num-shares": 3, "reconstruction-threshold": 2}
