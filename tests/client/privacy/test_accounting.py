"""DP accounting against Opacus, and the hospital's privacy settings."""

import math
import sys
import warnings

import pytest

from hospfed.client.privacy import (
    DpMechanism,
    DpStep,
    InsecureRandomnessWarning,
    PrivacySettings,
    epsilon_spent,
    expected_batch_size,
    noise_multiplier_for,
    poisson_sample_rate,
)
from hospfed.common.errors import ConfigError


def test_accounting_does_not_import_torch():
    code = (
        "import sys; from hospfed.client.privacy import DpMechanism, epsilon_spent;"
        "epsilon_spent([DpMechanism(noise_multiplier=1.0, sample_rate=0.02, steps=100)], 1e-3);"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "history",
    [
        [(1.0, 0.02, 1500)],
        [(2.39, 0.02, 100), (2.39, 0.02, 100), (0.8, 0.05, 30)],
        [(5.0, 0.2, 10)],
    ],
)
def test_epsilon_equals_opacus_rdp_accountant(history):
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = list(history)
    ours = epsilon_spent(
        [
            DpMechanism(noise_multiplier=h[0], sample_rate=h[1], steps=h[2])
            for h in history
        ],
        1e-3,
    )
    assert ours == pytest.approx(accountant.get_epsilon(1e-3), rel=1e-12)


def test_derived_noise_matches_opacus_and_meets_the_budget():
    from opacus.accountants.utils import get_noise_multiplier

    q, steps = poisson_sample_rate(199, 4), 1500
    ours = noise_multiplier_for(epsilon=1.0, delta=1e-3, sample_rate=q, steps=steps)
    theirs = get_noise_multiplier(
        target_epsilon=1.0, target_delta=1e-3, sample_rate=q, steps=steps
    )
    assert ours == pytest.approx(theirs, rel=0.02)
    assert (
        epsilon_spent(
            [DpMechanism(noise_multiplier=ours, sample_rate=q, steps=steps)], 1e-3
        )
        <= 1.0
    )
    assert (
        epsilon_spent(
            [DpMechanism(noise_multiplier=ours * 0.97, sample_rate=q, steps=steps)],
            1e-3,
        )
        > 1.0
    )


def test_sample_rate_and_expected_batch_follow_opacus_data_loader():
    assert poisson_sample_rate(199, 4) == 1 / 50
    assert expected_batch_size(199, 1 / 50) == 3
    assert poisson_sample_rate(3, 4) == 1.0


def test_empty_history_spends_nothing_and_zero_noise_spends_everything():
    assert epsilon_spent([], 1e-3) == 0.0
    assert (
        epsilon_spent(
            [DpMechanism(noise_multiplier=0.0, sample_rate=0.1, steps=5)], 1e-3
        )
        == math.inf
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"epsilon": 0.0, "delta": 1e-3}, "epsilon must be > 0"),
        ({"epsilon": -1.0, "delta": 1e-3}, "epsilon must be > 0"),
        ({"epsilon": 1.0, "delta": 0.0}, r"delta must be in \(0, 1\)"),
        ({"epsilon": 1.0, "delta": 1.0}, r"delta must be in \(0, 1\)"),
        ({"epsilon": 1.0, "delta": 1e-3, "clip_norm": 0.0}, "clip-norm must be > 0"),
        (
            {"epsilon": 1.0, "delta": 1e-3, "noise_multiplier": -0.5},
            "noise-multiplier must be >= 0",
        ),
    ],
)
def test_bad_privacy_settings_are_refused(settings, message):
    with pytest.raises(ConfigError, match=message):
        PrivacySettings(**settings)


def test_settings_are_keyword_only():
    with pytest.raises(TypeError):
        PrivacySettings(1.0, 1e-3)  # type: ignore[misc]


def test_settings_from_node_config():
    assert PrivacySettings.from_mapping({"hospital": "va"}) is None
    settings = PrivacySettings.from_mapping(
        {"epsilon": "0.5", "noise-multiplier": 1.2, "dp-rounds": 4}
    )
    assert settings == PrivacySettings(
        epsilon=0.5, delta=1e-3, noise_multiplier=1.2, planned_rounds=4
    )
    with pytest.raises(ConfigError, match="epsilon: expected a number"):
        PrivacySettings.from_mapping({"epsilon": "lots"})


def test_noise_comes_from_the_os_unless_a_test_fixes_it():
    secure = DpStep(noise_multiplier=1.0, clip_norm=1.0, sample_rate=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert secure.entropy() != secure.entropy()
    fixed = DpStep(noise_multiplier=1.0, clip_norm=1.0, sample_rate=0.1, noise_seed=7)
    with pytest.warns(InsecureRandomnessWarning, match="fixed seed"):
        assert fixed.entropy() == 7
