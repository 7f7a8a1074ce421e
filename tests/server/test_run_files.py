"""hospfed-server run keeps a copy of the task and schema files it was given."""

from __future__ import annotations

from hospfed.common.datasets import FED_HEART_TASK
from hospfed.common.task import dump_task, load_task
from hospfed.server.config import RunConfig
from hospfed.server.runs import pin_definition_files


def test_task_and_schema_files_are_pinned_into_the_run_directory(tmp_path):
    task = tmp_path / "mine.task.toml"
    dump_task(FED_HEART_TASK, task)
    out = tmp_path / "runs" / "run-1"
    out.mkdir(parents=True)
    pairs = {"task": str(task), "schema": "fed-heart-disease-raw", "num-rounds": "2"}
    pinned = pin_definition_files(pairs, out)
    assert pinned["schema"] == "fed-heart-disease-raw"  # a built-in name stays
    assert pinned["num-rounds"] == "2"
    copy = out / "task.toml"
    assert pinned["task"] == str(copy.absolute())
    assert (copy.stat().st_mode & 0o777) == 0o600
    task.write_text("edited after submission")  # the run keeps its own copy
    assert load_task(copy) == FED_HEART_TASK
    assert RunConfig.from_mapping(pinned).task == FED_HEART_TASK


def test_builtin_task_names_are_not_copied(tmp_path):
    pairs = {"task": "fed-heart-disease"}
    assert pin_definition_files(pairs, tmp_path) == pairs
    assert list(tmp_path.iterdir()) == []
