"""Learning tasks of a made-up multi-centre study (not heart), one per label kind.

Each reads the same de-identified schema, ``ward-study``: two numeric
features, one binary and one categorical feature with text levels.
"""

from __future__ import annotations

from hospfed.common.task import LearningTask, loads_task

_FEATURES = """
[[features]]
column = "age"
missing = "impute"
impute = 60.0

[[features]]
column = "lactate"

[[features]]
column = "smoker"
kind = "binary"

[[features]]
column = "ward"
kind = "categorical"
levels = ["icu", "med", "surg"]
drop-first = true
"""

_LABELS = {
    "binary": '[label]\ncolumn = "outcome"\nkind = "binary"\n',
    "multiclass": (
        '[label]\ncolumn = "outcome"\nkind = "multiclass"\n'
        'classes = ["home", "rehab", "died"]\n'
    ),
    "continuous": '[label]\ncolumn = "outcome"\nkind = "continuous"\n',
}


def own_task(kind: str, standardise: str = "hospital") -> LearningTask:
    """The study's task with a label of ``kind``, standardised by ``standardise``."""
    text = (
        'format = "hospfed-task"\nformat-version = 1\n'
        f'name = "ward-{kind}"\nschema = "ward-study"\n'
        + _LABELS[kind]
        + _FEATURES
        + "[split]\ntrain-fraction = 0.7\nseed = 5\nstratify = true\n"
        + f'[standardise]\nby = "{standardise}"\n'
    )
    return loads_task(text)


STUDY_SCHEMA = """
format = "hospfed-schema"
format-version = 1
name = "ward-study-raw"
version = 1
label = "outcome"

[[columns]]
name = "mrn"
kind = "string"
role = "identifier"
deid = "pseudonymise"
phi = "mrn"
pattern = "[0-9]{8}"

[[columns]]
name = "site"
kind = "string"
role = "partition"
deid = "drop"

[[columns]]
name = "age"
kind = "float"
nullable = true
reviewed = "synthetic test measurement"

[[columns]]
name = "lactate"
kind = "float"
reviewed = "synthetic test measurement"

[[columns]]
name = "smoker"
kind = "int"
minimum = 0
maximum = 1

[[columns]]
name = "ward"
kind = "string"
"""

_OUTCOME = {
    "binary": '\n[[columns]]\nname = "outcome"\nkind = "category"\nlevels = [0, 1]\n',
    "multiclass": '\n[[columns]]\nname = "outcome"\nkind = "string"\n',
    "continuous": (
        '\n[[columns]]\nname = "outcome"\nkind = "float"\n'
        'reviewed = "synthetic test measurement"\n'
    ),
}


def study_schema(kind: str) -> str:
    """The study's raw-export schema file (TOML) when the outcome is ``kind``."""
    return STUDY_SCHEMA + _OUTCOME[kind]


def study_rows(kind: str, rows: int, *, seed: int, sites: tuple[str, ...]):
    """A raw multi-centre export: MRNs, a site column, features and outcome.

    A few ages are missing (the task imputes them).
    """
    import numpy as np

    from hospfed.simulations.synthetic import synthetic_rows

    frame = synthetic_rows(own_task(kind), rows, seed=seed)
    rng = np.random.default_rng(seed + 1)
    frame["age"] = frame["age"].astype("float64")
    frame.loc[rng.random(rows) < 0.02, "age"] = np.nan
    frame.insert(0, "mrn", [f"{n:08d}" for n in rng.choice(10**8, rows, replace=False)])
    frame.insert(1, "site", rng.choice(np.asarray(sites), rows))
    return frame
