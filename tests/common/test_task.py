"""Task files: the learning task read, written and fingerprinted."""

from pathlib import Path

import pytest

from hospfed.common.datasets import FED_HEART_TASK, resolve_task
from hospfed.common.errors import ConfigError
from hospfed.common.task import dump_task, dumps_task, load_task, loads_task

# Pinned: a hospital and its coordinator compare this fingerprint every round,
# so a change to how a version 1 task file reads must not move it.
HEART_TASK_FINGERPRINT = (
    "9dbfed2e7802e81624a8a10aee9db6826772a971c4a754a39530c277d067f892"
)


def test_the_bundled_heart_task_has_a_pinned_fingerprint():
    assert FED_HEART_TASK.fingerprint() == HEART_TASK_FINGERPRINT
    assert resolve_task("fed-heart-disease") is FED_HEART_TASK
    assert FED_HEART_TASK.input_names[-5:] == (
        "cp_2",
        "cp_3",
        "cp_4",
        "restecg_1",
        "restecg_2",
    )


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_task_files_round_trip(tmp_path, suffix):
    path = tmp_path / f"task{suffix}"
    dump_task(FED_HEART_TASK, path)
    assert load_task(path) == FED_HEART_TASK
    assert loads_task(dumps_task(FED_HEART_TASK), fmt="json") == FED_HEART_TASK


BASE = """
format = "hospfed-task"
format-version = 1
name = "t"
schema = "s"
[label]
column = "y"
[[features]]
column = "x"
"""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[split]\ntrain-fraction = 1.5\n", "train-fraction"),
        ('[standardise]\nby = "pooled"\n', "standardise 'pooled'"),
        ('[[features]]\ncolumn = "x"\n', "listed twice"),
        ('[[features]]\ncolumn = "y"\n', "also a feature"),
        ('[[features]]\ncolumn = "z"\nkind = "ordinal"\n', "kind 'ordinal'"),
        ('[[features]]\ncolumn = "z"\nmissing = "impute"\n', "give 'impute'"),
        ('[[features]]\ncolumn = "z"\nkind = "categorical"\nlevels = [1]\n', ">= 2"),
        ('[[features]]\ncolumn = "z"\ncolour = "red"\n', "unknown key 'colour'"),
    ],
)
def test_a_bad_task_file_is_a_one_line_error_naming_the_key(extra, message):
    with pytest.raises(ConfigError, match=message):
        loads_task(BASE + extra)


def test_the_format_and_version_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="format-version 2"):
        loads_task(BASE.replace("format-version = 1", "format-version = 2"))
    with pytest.raises(ConfigError, match="unknown task .*nope.*no such file"):
        resolve_task(str(tmp_path / "nope"))
    assert load_task(
        Path(__file__).parents[2] / "common/datasets/fed-heart-disease.task.toml"
    )
