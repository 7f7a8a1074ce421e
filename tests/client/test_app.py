import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Context, RecordDict

from hospfed.client.app import (
    HospitalClient,
    hospital_seed,
    settings_by_partition,
)
from hospfed.client.data import HospitalDataset, NodeSettings
from hospfed.client.privacy import PrivacySettings
from hospfed.client.vault import generate_key_file
from hospfed.common.datasets import FED_HEART_TASK
from hospfed.common.datasets.heart import clinical_table
from hospfed.common.datasets.heart_schema import FED_HEART_SCHEMA
from hospfed.common.errors import ConfigError, PrivacyBudgetError, SchemaError
from hospfed.common.model import ModelSpec, initial_weights
from hospfed.common.protocol import METRIC_WHITELIST, encode_instructions
from hospfed.common.schema import dumps_schema
from hospfed.common.training import TrainPlan


def node(hospital, **settings):
    state_dir = settings.get("state_dir")
    if state_dir is None:  # no DP: the key is never opened
        return NodeSettings(
            hospital=hospital,
            data=Path("site.hfd"),
            key_file=Path("site.key"),
            **settings,
        )
    # With DP the ledger is keyed and its receipt sits beside the data.
    site = state_dir / "site"
    site.mkdir(mode=0o700)
    key = site / "site.key"
    generate_key_file(key)
    return NodeSettings(
        hospital=hospital, data=site / "site.hfd", key_file=key, **settings
    )


def client_for(hospital, schema=FED_HEART_SCHEMA, **settings):
    dataset = HospitalDataset(clinical_table(hospital), schema, hospital)
    return HospitalClient(dataset, node(hospital, **settings), "run-1")


def instructions(spec, server_round=1, **plan):
    base = {"learning_rate": 0.01, "local_steps": 20, "batch_size": 4} | plan
    return encode_instructions(
        TrainPlan(**base), spec, server_round, FED_HEART_SCHEMA, task=FED_HEART_TASK
    )


def test_fit_trains_on_local_data_and_reports_only_whitelisted_metrics():
    spec = ModelSpec(13)
    client = client_for("switzerland")
    start = initial_weights(spec, 0)
    weights, n, metrics = client.fit(start, instructions(spec))
    assert n == 30
    assert [w.shape for w in weights] == spec.weight_shapes()
    assert not np.allclose(weights[0], start[0])
    assert set(metrics) <= METRIC_WHITELIST
    assert metrics["hospital"] == "switzerland"


def test_evaluate_scores_the_global_model_on_the_local_test_set():
    spec = ModelSpec(13)
    client = client_for("hungary")
    loss, n, metrics = client.evaluate(initial_weights(spec, 0), instructions(spec))
    assert n == 89 and loss > 0
    assert 0 <= metrics["accuracy"] <= 1 and 0 <= metrics["auc"] <= 1


def test_same_round_same_seed_gives_the_same_update():
    spec = ModelSpec(13)
    client = client_for("va")
    start = initial_weights(spec, 0)
    a, _, _ = client.fit(start, instructions(spec, 3))
    b, _, _ = client.fit(start, instructions(spec, 3))
    c, _, _ = client.fit(start, instructions(spec, 4))
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[0], c[0])


def test_hospitals_draw_different_batches_in_the_same_round():
    assert hospital_seed(0, 1, "cleveland") != hospital_seed(0, 1, "hungary")


def test_a_model_that_does_not_fit_the_data_is_refused():
    spec = ModelSpec(9)
    client = client_for("va")
    with pytest.raises(
        ConfigError, match="model takes 9 inputs but this hospital's data has 13"
    ):
        client.fit(initial_weights(spec, 0), instructions(spec))


def test_non_whitelisted_metrics_never_leave():
    from hospfed.client.outgoing import check_reply

    with pytest.raises(ConfigError, match="not whitelisted"):
        check_reply([], {"hospital": "x", "patient-age": 54}, {})


def test_node_settings_need_a_prepared_dataset_its_key_and_a_known_backend():
    with pytest.raises(ConfigError, match="node config has no 'data'"):
        NodeSettings.from_mapping({"hospital": "va"})
    with pytest.raises(ConfigError, match="exactly one of 'key-file'"):
        NodeSettings.from_mapping({"data": "va.hfd"})
    with pytest.raises(ConfigError, match="exactly one of 'key-file'"):
        NodeSettings.from_mapping(
            {"data": "va.hfd", "key-file": "k", "passphrase-env": "P"}
        )
    with pytest.raises(ConfigError, match="backend: unknown value 'jax'"):
        NodeSettings.from_mapping({"data": "va.hfd", "key-file": "k", "backend": "jax"})
    settings = NodeSettings.from_mapping({"data": "/x/VA.hfd", "passphrase-env": "P"})
    assert settings.hospital == "VA" and settings.data == Path("/x/VA.hfd")
    assert (
        NodeSettings.from_mapping(
            {"hospital": "VA", "data": "a.hfd", "key-file": "k"}
        ).hospital
        == "va"
    )


def test_data_prepared_under_another_schema_is_refused_naming_the_column():
    other = replace(
        FED_HEART_SCHEMA,
        columns=tuple(
            replace(c, kind="int") if c.name == "chol" else c
            for c in FED_HEART_SCHEMA.columns
        ),
    )
    client = client_for("va", schema=other)
    spec = ModelSpec(13)
    with pytest.raises(SchemaError, match="column 'chol': kind int here, float in"):
        client.fit(initial_weights(spec, 0), instructions(spec))


def test_simulation_maps_partition_ids_to_hospitals():
    nodes = [node("cleveland"), node("va", backend="torch")]
    resolve = settings_by_partition(nodes)
    context = Context(
        run_id=1,
        node_id=5,
        node_config={"partition-id": 1},
        state=RecordDict(),
        run_config={},
    )
    assert resolve(context) == node("va", backend="torch")


def test_a_private_hospital_reports_epsilon_and_not_its_training_loss(tmp_path):
    spec = ModelSpec(13)
    privacy = PrivacySettings(epsilon=2.0, delta=1e-3, planned_rounds=3)
    client = client_for("va", privacy=privacy, state_dir=tmp_path)
    _, _, first = client.fit(initial_weights(spec, 0), instructions(spec, 1))
    _, _, second = client.fit(initial_weights(spec, 0), instructions(spec, 2))
    assert "train-loss" not in first
    assert 0 < first["epsilon-spent"] < second["epsilon-spent"] <= 2.0


def test_a_round_past_the_budget_is_declined_before_training(tmp_path):
    spec = ModelSpec(13)
    privacy = PrivacySettings(epsilon=1.0, delta=1e-3, planned_rounds=1)
    client = client_for("switzerland", privacy=privacy, state_dir=tmp_path)
    client.fit(initial_weights(spec, 0), instructions(spec, 1))
    ledger = (tmp_path / "privacy-ledger.json").read_bytes()
    with pytest.raises(PrivacyBudgetError, match="round 2 would raise epsilon"):
        client.fit(initial_weights(spec, 0), instructions(spec, 2))
    assert (tmp_path / "privacy-ledger.json").read_bytes() == ledger


def test_every_task_on_the_same_rows_spends_one_budget(tmp_path):
    from hospfed.common.task import dumps_task, loads_task

    spec = ModelSpec(13)
    privacy = PrivacySettings(epsilon=1.0, delta=1e-3, planned_rounds=1)
    client = client_for("switzerland", privacy=privacy, state_dir=tmp_path)
    client.fit(initial_weights(spec, 0), instructions(spec, 1))
    # Another split of the same patients: other training arrays, same budget.
    text = dumps_task(FED_HEART_TASK).replace('"seed": 43', '"seed": 44')
    other = loads_task(text, fmt="json")
    assert client.dataset.inputs(other).fingerprint() != (
        client.dataset.inputs(FED_HEART_TASK).fingerprint()
    )
    config = encode_instructions(
        TrainPlan(learning_rate=0.01, local_steps=20, batch_size=4),
        spec,
        2,
        FED_HEART_SCHEMA,
        task=other,
    )
    with pytest.raises(PrivacyBudgetError, match="round 2 would raise epsilon"):
        client.fit(initial_weights(spec, 0), config)


def test_node_config_carries_the_hospitals_own_privacy_settings(tmp_path):
    settings = NodeSettings.from_mapping(
        {
            "hospital": "va",
            "data": "va.hfd",
            "key-file": "va.key",
            "backend": "torch",
            "epsilon": 2,
            "delta": "1e-4",
            "clip-norm": 0.5,
            "state-dir": str(tmp_path),
        }
    )
    assert settings.privacy == PrivacySettings(epsilon=2.0, delta=1e-4, clip_norm=0.5)
    assert settings.state_dir == tmp_path
    with pytest.raises(ConfigError, match="no 'state-dir'"):
        NodeSettings.from_mapping({"data": "va.hfd", "key-file": "k", "epsilon": 1})
    plain = NodeSettings.from_mapping({"data": "va.hfd", "key-file": "k"})
    assert plain.privacy is None


def test_a_task_that_does_not_fit_the_hospitals_rows_is_refused_naming_both():
    from hospfed.common.task import dumps_task, loads_task

    spec = ModelSpec(13)
    text = dumps_task(FED_HEART_TASK).replace('"thalach"', '"heart_rate"')
    other = loads_task(text, fmt="json")
    config = encode_instructions(
        TrainPlan(learning_rate=0.01, local_steps=1, batch_size=4),
        spec,
        1,
        FED_HEART_SCHEMA,
        task=other,
    )
    with pytest.raises(ConfigError, match="^switzerland: task .*'heart_rate'"):
        client_for("switzerland").fit(initial_weights(spec, 0), config)


def test_inputs_are_built_once_per_task():
    spec = ModelSpec(13)
    client = client_for("va")
    client.fit(initial_weights(spec, 0), instructions(spec))
    client.evaluate(initial_weights(spec, 0), instructions(spec))
    assert list(client.dataset._inputs) == [FED_HEART_TASK.fingerprint()]


def _federation_task():
    from hospfed.common.task import dumps_task, loads_task

    text = dumps_task(FED_HEART_TASK).replace('"by": "hospital"', '"by": "federation"')
    return loads_task(text, fmt="json")


def test_a_sums_query_gets_the_training_inputs_sums_and_nothing_else():
    from hospfed.common.protocol import decode_scaling
    from hospfed.common.scaling import InputSums, federation_scaling

    task = _federation_task()
    spec = ModelSpec(13)
    plan = TrainPlan(learning_rate=0.01, local_steps=1, batch_size=4)
    query = encode_instructions(plan, spec, 1, FED_HEART_SCHEMA, task=task)
    answers = {
        h: client_for(h, input_sums=True).get_properties(query)
        for h in ("va", "switzerland")
    }
    assert set(answers["va"]) == {"hospital", "input-sums"}
    sums = {h: InputSums.from_json(a["input-sums"], h) for h, a in answers.items()}
    own = client_for("va").dataset.inputs(FED_HEART_TASK)  # the same split
    assert sums["va"].count == len(own.y_train) and len(sums["va"].sums) == 13
    scaling = federation_scaling(sums.values())
    with pytest.raises(ConfigError, match="standardises with the federation"):
        client_for("va").fit(initial_weights(spec, 0), query)  # no statistics sent
    config = encode_instructions(
        plan, spec, 1, FED_HEART_SCHEMA, task=task, scaling=scaling
    )
    assert decode_scaling(config) == scaling
    client = client_for("va")
    client.fit(initial_weights(spec, 0), config)
    [data] = client.dataset._inputs.values()
    train = np.concatenate(
        [
            client_for(h).dataset.inputs(task, scaling).x_train
            for h in ("va", "switzerland")
        ]
    )
    np.testing.assert_allclose(train.mean(0), 0.0, atol=1e-5)  # pooled-standardised
    assert not np.allclose(data.x_train.mean(0), 0.0, atol=1e-3)  # not VA's own


def test_sums_are_sent_only_when_allowed_once_per_run_and_over_enough_rows():
    from hospfed.client.app import MIN_SUMS_ROWS

    spec = ModelSpec(13)
    plan = TrainPlan(learning_rate=0.01, local_steps=1, batch_size=4)
    query = encode_instructions(
        plan, spec, 1, FED_HEART_SCHEMA, task=_federation_task()
    )
    with pytest.raises(
        ConfigError, match='^va: does not send sums.*input-sums = "allow"'
    ):
        client_for("va").get_properties(query)  # the default: refused
    client = client_for("va", input_sums=True)
    client.get_properties(query)
    with pytest.raises(ConfigError, match="has sent its input sums for run run-1"):
        client.get_properties(query)
    small = client_for("switzerland", input_sums=True)
    small.dataset = HospitalDataset(
        clinical_table("switzerland").head(14), FED_HEART_SCHEMA, "switzerland"
    )
    with pytest.raises(ConfigError, match=f"sends sums over {MIN_SUMS_ROWS} or more"):
        small.get_properties(query)


def test_a_hospital_refuses_a_task_reading_an_identifying_column():
    from hospfed.common.schema import loads_schema

    document = json.loads(dumps_schema(FED_HEART_SCHEMA))
    for column in document["columns"]:
        if column["name"] == "thalach":
            column["role"] = "pseudonym"
            column["kind"] = "string"
    schema = loads_schema(json.dumps(document))
    spec = ModelSpec(13)
    config = encode_instructions(
        TrainPlan(learning_rate=0.01, local_steps=1, batch_size=4),
        spec,
        1,
        schema,
        task=FED_HEART_TASK,
    )
    client = client_for("va", schema=schema)
    with pytest.raises(ConfigError, match="^va: task .*'thalach', a pseudonym column"):
        client.fit(initial_weights(spec, 0), config)


def test_a_private_hospital_refuses_to_send_sums(tmp_path):
    spec = ModelSpec(13)
    plan = TrainPlan(learning_rate=0.01, local_steps=1, batch_size=4)
    query = encode_instructions(
        plan, spec, 1, FED_HEART_SCHEMA, task=_federation_task()
    )
    client = client_for(
        "va",
        privacy=PrivacySettings(epsilon=1.0, delta=1e-3, clip_norm=1.0),
        state_dir=tmp_path,
    )
    with pytest.raises(ConfigError, match="^va: trains with DP-SGD"):
        client.get_properties(query)
