"""The run's learning task: chosen in the run config, sent every round."""

from __future__ import annotations

import pytest

from hospfed.common.datasets import FED_HEART_TASK
from hospfed.common.datasets.heart_schema import FED_HEART_SCHEMA
from hospfed.common.errors import ConfigError
from hospfed.common.model import ModelSpec
from hospfed.common.protocol import Key, decode_task, encode_instructions
from hospfed.common.task import dump_task, dumps_task, loads_task
from hospfed.common.training import TrainPlan
from hospfed.server.config import RunConfig
from tests.simulations.own_tasks import own_task, study_schema


def test_the_default_task_is_fed_heart_disease():
    config = RunConfig.from_mapping({})
    assert config.task == FED_HEART_TASK
    assert config.model.input_dim == 13 and config.model.output == "binary"
    assert (config.fraction_fit, config.fraction_evaluate) == (1.0, 1.0)


@pytest.mark.parametrize(
    ("kind", "output", "classes"),
    [
        ("binary", "binary", 2),
        ("multiclass", "multiclass", 3),
        ("continuous", "continuous", 2),
    ],
)
def test_a_task_file_sets_the_models_inputs_and_output(tmp_path, kind, output, classes):
    schema = tmp_path / "study.schema.toml"
    schema.write_text(study_schema(kind))
    task = tmp_path / "study.task.toml"
    dump_task(own_task(kind), task)
    config = RunConfig.from_mapping({"task": str(task), "schema": str(schema)})
    assert config.task == own_task(kind)
    assert config.model == ModelSpec(5, output=output, num_classes=classes)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"task": "no-such-task"}, "no-such-task"),
        ({"model-input-dim": "12"}, "model-input-dim is 12 but task"),
        ({"fraction-fit": "1.5"}, "fraction-fit must be in (0, 1]"),
        ({"fraction-evaluate": "0"}, "fraction-evaluate"),
    ],
)
def test_bad_task_settings_are_refused(mapping, message):
    with pytest.raises(
        ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        RunConfig.from_mapping(mapping)


def test_a_task_for_another_schema_is_refused(tmp_path):
    task = tmp_path / "study.task.toml"
    dump_task(own_task("binary"), task)
    with pytest.raises(ConfigError, match="reads prepared data of schema 'ward-study'"):
        RunConfig.from_mapping({"task": str(task)})  # heart's schema


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ("site", "reads column 'site', which schema 'ward-study' does not keep"),
        ("mrn", "reads column 'mrn', a pseudonym column"),
    ],
)
def test_a_task_reading_a_dropped_or_identifying_column_is_refused(
    tmp_path, column, message
):
    text = dumps_task(own_task("binary")).replace('"lactate"', f'"{column}"')
    task = loads_task(text, fmt="json")
    schema = tmp_path / "study.schema.toml"
    schema.write_text(study_schema("binary"))
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_mapping({"schema": str(schema)}, task=task)


def test_the_task_travels_with_its_fingerprint_and_is_checked():
    plan = TrainPlan(learning_rate=0.1, local_steps=1, batch_size=4)
    spec = ModelSpec(5, output="multiclass", num_classes=3)
    task = own_task("multiclass")
    config = encode_instructions(plan, spec, 1, FED_HEART_SCHEMA, task=task)
    assert decode_task(config) == task
    tampered = dict(config)
    tampered[Key.TASK] = dumps_task(own_task("binary"))
    with pytest.raises(ConfigError, match="does not match the fingerprint"):
        decode_task(tampered)
    with pytest.raises(ConfigError, match="no task"):
        decode_task({k: v for k, v in config.items() if k != Key.TASK})


def test_federation_scaling_is_refused_with_client_level_central_dp():
    from tests.client.test_app import _federation_task

    with pytest.raises(ConfigError, match="standardises by federation"):
        RunConfig.from_mapping({"central-dp": "fixed"}, task=_federation_task())
