import pytest

from hospfed.common.errors import ConfigError
from hospfed.server.config import RunConfig


def test_defaults_are_flambys_fedavg():
    config = RunConfig.from_mapping({})
    assert (config.strategy, config.num_rounds) == ("fedavg", 15)
    assert (
        config.train.learning_rate,
        config.train.local_steps,
        config.train.batch_size,
    ) == (0.001, 100, 4)
    assert config.model.input_dim == 13 and config.out_dir is None


def test_adaptive_strategies_use_flambys_fedyogi_settings():
    config = RunConfig.from_mapping({"strategy": "FedYogi"})
    assert config.strategy == "fedyogi"
    assert config.train.learning_rate == 0.003162
    assert (config.server_learning_rate, config.beta_1, config.beta_2, config.tau) == (
        0.01,
        0.9,
        0.999,
        1e-8,
    )


def test_fedprox_has_a_proximal_term_and_fedavg_none():
    assert RunConfig.from_mapping({"strategy": "fedprox"}).train.proximal_mu > 0
    assert RunConfig.from_mapping({}).train.proximal_mu == 0


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (
            {"strategy": "fedsgd"},
            "strategy: unknown value 'fedsgd'; allowed: fedavg, "
            "fedprox, fedadam, fedyogi, fedadagrad",
        ),
        ({"num-rounds": 0}, "num-rounds: must be >= 1, got 0"),
        ({"num-rounds": "ten"}, "num-rounds: expected a whole number, got 'ten'"),
        ({"learning-rate": -1}, "learning-rate: must be > 0"),
        ({"model-hidden": "8,x"}, "model-hidden: expected comma-separated widths"),
        ({"model-activation": "gelu"}, "model-activation: unknown value 'gelu'"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(mapping, message):
    with pytest.raises(ConfigError) as info:
        RunConfig.from_mapping(mapping)
    assert message in str(info.value)


def test_hidden_layers_are_parsed():
    assert RunConfig.from_mapping({"model-hidden": "16,8"}).model.hidden == (16, 8)


def test_adaptive_server_learning_rates_differ_by_strategy():
    rates = {
        s: RunConfig.from_mapping({"strategy": s}).server_learning_rate
        for s in ("fedyogi", "fedadam", "fedadagrad")
    }
    assert rates == {"fedyogi": 0.01, "fedadam": 0.03, "fedadagrad": 0.1}
    assert (
        RunConfig.from_mapping(
            {"strategy": "fedadam", "server-learning-rate": 0.2}
        ).server_learning_rate
        == 0.2
    )


def test_the_run_schema_is_the_deidentified_form_of_a_named_or_file_schema(tmp_path):
    from hospfed.common.datasets.heart_schema import (
        FED_HEART_RAW_SCHEMA,
        FED_HEART_SCHEMA,
    )
    from hospfed.common.schema import dumps_schema

    default = RunConfig.from_mapping({})
    assert default.data_schema.fingerprint() == FED_HEART_SCHEMA.fingerprint()
    path = tmp_path / "mine.json"
    path.write_text(dumps_schema(FED_HEART_RAW_SCHEMA))
    from_file = RunConfig.from_mapping({"schema": str(path)})
    assert from_file.data_schema.fingerprint() == FED_HEART_SCHEMA.fingerprint()
    with pytest.raises(ConfigError, match="unknown schema 'nope'"):
        RunConfig.from_mapping({"schema": "nope"})


def test_an_unknown_run_config_key_is_refused_naming_the_allowed_ones():
    with pytest.raises(ConfigError, match="unknown run-config key 'bogus'") as info:
        RunConfig.from_mapping({"bogus": "1", "num-rounds": "5"})
    assert "num-rounds" in str(info.value)
    with pytest.raises(ConfigError, match="unknown run-config key 'rounds'"):
        RunConfig.from_mapping({"rounds": "5"})
    every_key = {"num-rounds": "5", "strategy": "fedyogi", "seed": "3"}
    assert RunConfig.from_mapping(every_key).num_rounds == 5
