"""The checkpoint format (v1): known answers, round trips, refusals."""

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from flwr.common import (
    Code,
    FitRes,
    Status,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server.strategy import FedAvg, FedYogi

from hospfed.common.errors import ConfigError, DataError
from hospfed.server.checkpoint import (
    CHECKPOINT_FILE,
    Checkpoint,
    check_same_config,
    checkpoint_bytes,
    config_differences,
    config_hash,
    load_checkpoint,
    restore_strategy_state,
    run_identity,
    save_checkpoint,
    strategy_state,
)
from hospfed.server.config import RunConfig
from hospfed.server.history import Declined, RunHistory

VECTORS = Path(__file__).parent / "vectors"
V1 = VECTORS / "checkpoint-v1"
# The identity of the checked-in vector, literally: what a v1 file says.
V1_IDENTITY = {"strategy": "fedyogi", "seed": 7, "settings": {"backend": "keras"}}
V1_HASH = "sha256:3074ad8eac42338232876cd6f7d5c90b0b0c5938f7d547079bb393ac3639a9a7"


def v1_checkpoint() -> Checkpoint:
    """What tests/server/vectors/checkpoint-v1/checkpoint.npz holds."""
    history = RunHistory()
    for server_round in (1, 2):
        record = history.round(server_round)
        record.add_training(
            "cleveland", 0.5 / server_round, 199, epsilon=0.25 * server_round
        )
        record.evaluate["cleveland"] = {
            "accuracy": 0.5 + server_round / 10,
            "auc": math.nan,
            "loss": 0.7,
            "num_examples": 104.0,
        }
    history.rounds[1].declined = [Declined(reason="privacy budget", hospital="va")]
    return Checkpoint(
        completed_rounds=2,
        num_rounds=5,
        status="interrupted",
        reason="interrupted (SIGINT) after round 2 of 5",
        weights=[
            np.arange(6, dtype=np.float32).reshape(3, 2) / 8,
            np.array([0.25, -0.5], dtype=np.float32),
        ],
        optimizer={
            "m_t": [np.full((3, 2), 0.125, np.float32), np.zeros(2, np.float32)],
            "v_t": [np.full((3, 2), 0.0625, np.float32), np.ones(2, np.float32)],
        },
        history=history,
        identity=V1_IDENTITY,
        config_hash=config_hash(V1_IDENTITY),
        run={"seconds": 12.5, "resumed_from": [1]},
    )


def test_the_checked_in_v1_checkpoint_still_loads_to_the_same_values():
    loaded = load_checkpoint(V1)
    want = v1_checkpoint()
    assert loaded.config_hash == config_hash(V1_IDENTITY) == V1_HASH
    assert (loaded.completed_rounds, loaded.num_rounds) == (2, 5)
    assert (loaded.status, loaded.reason) == (want.status, want.reason)
    for got, expected in zip(loaded.weights, want.weights, strict=True):
        assert got.dtype == expected.dtype and np.array_equal(got, expected)
    assert set(loaded.optimizer) == {"m_t", "v_t"}
    for name in ("m_t", "v_t"):
        for got, expected in zip(
            loaded.optimizer[name], want.optimizer[name], strict=True
        ):
            assert np.array_equal(got, expected)
    assert loaded.history.to_json() == want.history.to_json()
    assert math.isnan(loaded.history.rounds[0].evaluate["cleveland"]["auc"])
    assert loaded.history.rounds[1].declined[0].label() == "va: privacy budget"
    assert loaded.run == {"seconds": 12.5, "resumed_from": [1]}


def test_writing_the_v1_content_again_gives_the_same_bytes():
    data = (V1 / CHECKPOINT_FILE).read_bytes()
    assert checkpoint_bytes(v1_checkpoint()) == data
    assert (
        hashlib.sha256(data).hexdigest()
        == hashlib.sha256(checkpoint_bytes(load_checkpoint(V1))).hexdigest()
    )


def test_a_checkpoint_is_never_pickled_and_round_trips(tmp_path):
    checkpoint = v1_checkpoint()
    save_checkpoint(tmp_path / "run", checkpoint)
    with np.load(tmp_path / "run" / CHECKPOINT_FILE, allow_pickle=False) as archive:
        assert all(archive[name].dtype != object for name in archive.files)
        meta = json.loads(archive["meta"].tobytes())
    assert meta["format"] == "hospfed-checkpoint" and meta["version"] == 1
    assert load_checkpoint(tmp_path / "run").history.to_json() == (
        checkpoint.history.to_json()
    )


def test_missing_damaged_foreign_and_future_checkpoints_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint in"):
        load_checkpoint(tmp_path)
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable hospfed checkpoint"):
        load_checkpoint(tmp_path)
    for change, message in (
        ({"version": 2}, "version 2 is not supported"),
        ({"format": "other"}, "not a readable hospfed checkpoint"),
        ({"identity": V1_IDENTITY | {"seed": 8}}, "do not match its config hash"),
        ({"completed_rounds": 3}, "3 completed rounds but 2 rounds of metrics"),
    ):
        rewrite_meta(V1 / CHECKPOINT_FILE, tmp_path / CHECKPOINT_FILE, change)
        with pytest.raises(DataError, match=message):
            load_checkpoint(tmp_path)


def rewrite_meta(source, target, change):
    with np.load(source, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(arrays.pop("meta").tobytes()) | change
    encoded = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(target, meta=encoded, **arrays)


def test_the_config_hash_is_canonical_and_names_what_changed():
    config = RunConfig.from_mapping({"strategy": "fedyogi", "num-rounds": 3})
    identity = run_identity(config, {"backend": "keras"})
    assert "num_rounds" not in identity and "out_dir" not in identity
    longer = RunConfig.from_mapping({"strategy": "fedyogi", "num-rounds": 9})
    assert config_hash(run_identity(longer, {"backend": "keras"})) == config_hash(
        identity
    )
    other = run_identity(
        RunConfig.from_mapping({"strategy": "fedyogi", "seed": 3}), {"backend": "torch"}
    )
    assert config_hash(other) != config_hash(identity)
    assert config_differences(identity, other) == [
        "seed: 0 -> 3",
        "settings.backend: 'keras' -> 'torch'",
        "train.seed: 0 -> 3",
    ]
    checkpoint = v1_checkpoint()
    with pytest.raises(ConfigError, match="strategy: 'fedyogi' -> 'fedavg'"):
        check_same_config(checkpoint, V1_IDENTITY | {"strategy": "fedavg"})
    check_same_config(checkpoint, dict(V1_IDENTITY))


def fit(weights, value):
    res = FitRes(
        Status(Code.OK, ""),
        ndarrays_to_parameters([w + value for w in weights]),
        10,
        {},
    )
    return (None, res)


def test_restored_fedyogi_moments_continue_the_same_optimisation():
    start = [np.zeros((3, 1), np.float32), np.zeros(1, np.float32)]

    def yogi(initial):
        return FedYogi(initial_parameters=ndarrays_to_parameters(initial))

    straight = yogi(start)
    params, _ = straight.aggregate_fit(1, [fit(start, 0.5)], [])
    after_one = parameters_to_ndarrays(params)
    state = strategy_state(straight)
    assert set(state) == {"m_t", "v_t"}
    params, _ = straight.aggregate_fit(2, [fit(after_one, -0.25)], [])
    want = parameters_to_ndarrays(params)

    resumed = yogi(after_one)
    restore_strategy_state(resumed, state)
    params, _ = resumed.aggregate_fit(2, [fit(after_one, -0.25)], [])
    assert all(
        np.array_equal(a, b)
        for a, b in zip(parameters_to_ndarrays(params), want, strict=True)
    )

    fresh = yogi(after_one)  # without the moments: another result
    params, _ = fresh.aggregate_fit(2, [fit(after_one, -0.25)], [])
    assert not np.array_equal(parameters_to_ndarrays(params)[0], want[0])


def test_fedavg_has_no_optimiser_state_and_refuses_one():
    strategy = FedAvg()
    assert strategy_state(strategy) == {}
    with pytest.raises(ConfigError, match="does not have"):
        restore_strategy_state(strategy, {"m_t": [np.zeros(1)]})
