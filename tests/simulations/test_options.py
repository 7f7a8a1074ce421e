"""Refusals before any work: unusable paths, unfinished runs, bad resumes."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from hospfed.common.errors import ConfigError
from hospfed.server.checkpoint import (
    CHECKPOINT_FILE,
    Checkpoint,
    config_hash,
    run_identity,
    save_checkpoint,
)
from hospfed.server.history import RunHistory
from hospfed.simulations.cli import main as sim_main
from hospfed.simulations.options import plan_heart

VECTOR = Path(__file__).parents[1] / "server" / "vectors" / "checkpoint-v1"
DEFAULTS = {
    "rounds": 15,
    "strategy": "fedavg",
    "seed": 0,
    "out": None,
    "pooled": False,
    "epochs": 50,
    "min_hospitals": 4,
    "backend": "keras",
    "local_steps": 100,
    "hidden": "",
    "epsilon": None,
    "delta": 1e-3,
    "clip_norm": 1.0,
    "state_dir": None,
    "resume": None,
    "secure_aggregation": True,
    "verbose": False,
}


def run(argv, capsys):
    with pytest.raises(SystemExit) as info:
        sim_main(argv)
    return info.value.code, capsys.readouterr().err


def plan(**given):
    return plan_heart(DEFAULTS | given, set(given))


def simulated_checkpoint(out, *, done=1, status="interrupted", **given):
    """A checkpoint as hospfed-sim heart would have left it in ``out``."""
    fresh = plan(out=out, **given)
    history = RunHistory()
    for r in range(1, done + 1):
        history.round(r)
    identity = run_identity(fresh.config, fresh.settings)
    checkpoint = Checkpoint(
        completed_rounds=done,
        num_rounds=fresh.config.num_rounds,
        status=status,
        reason=None,
        weights=[np.zeros((13, 1), np.float32), np.zeros(1, np.float32)],
        optimizer={},
        history=history,
        identity=identity,
        config_hash=config_hash(identity),
    )
    save_checkpoint(out, checkpoint)
    return checkpoint


@pytest.mark.parametrize("out", ["/proc/hospfed-run", "/proc/self/hospfed/run"])
def test_an_output_the_system_refuses_is_refused_before_anything_runs(out, capsys):
    # os.access says yes to root here; writing a probe file says no.
    code, err = run(["heart", "--rounds", "2", "--out", out], capsys)
    assert code == 2
    assert err.startswith(f"hospfed-sim: error: output {out}: cannot create or write ")
    assert err.endswith("; choose another directory\n") and err.count("\n") == 1


def test_a_probe_leaves_no_directory_behind(tmp_path):
    plan(out=tmp_path / "a" / "b" / "c", pooled=True)
    assert list(tmp_path.iterdir()) == []


def test_a_state_dir_that_is_a_file_is_refused_up_front(tmp_path, capsys):
    blocker = tmp_path / "ledgers"
    blocker.write_text("not a directory")
    code, err = run(
        [
            "heart",
            "--epsilon",
            "1",
            "--state-dir",
            str(blocker),
            "--out",
            str(tmp_path),
        ],
        capsys,
    )
    assert code == 2
    assert err == (
        f"hospfed-sim: error: state dir {blocker}: {blocker} exists and is not a "
        "directory\n"
    )


def test_a_directory_holding_an_unfinished_run_is_not_overwritten(tmp_path, capsys):
    shutil.copy(VECTOR / CHECKPOINT_FILE, tmp_path / CHECKPOINT_FILE)
    code, err = run(["heart", "--out", str(tmp_path)], capsys)
    assert code == 2
    assert err == (
        f"hospfed-sim: error: {tmp_path} holds an unfinished run (interrupted after "
        f"round 2 of 5): resume it with --resume {tmp_path}, or choose another --out\n"
    )


def test_an_unfinished_run_that_cannot_be_resumed_may_be_replaced(tmp_path):
    simulated_checkpoint(tmp_path, epsilon=1.0)  # its ledgers were temporary
    assert plan(out=tmp_path, epsilon=1.0).out_dir == tmp_path


def test_hidden_layers_are_a_flag(tmp_path):
    assert plan(out=tmp_path / "a").config.model.hidden == ()
    assert plan(out=tmp_path / "b", hidden="64,32").config.model.hidden == (64, 32)
    for bad in ("64,x", "0", "64,,32"):
        with pytest.raises(ConfigError, match="model-hidden"):
            plan(out=tmp_path / "c", hidden=bad)


def test_a_resume_takes_the_runs_own_settings(tmp_path):
    simulated_checkpoint(
        tmp_path,
        strategy="fedyogi",
        seed=3,
        rounds=6,
        local_steps=7,
        backend="mixed",
        hidden="5,3",
    )
    resumed = plan(resume=tmp_path)
    config = resumed.config
    assert (config.strategy, config.seed, config.num_rounds) == ("fedyogi", 3, 6)
    assert (config.train.local_steps, resumed.backend, resumed.done) == (7, "mixed", 1)
    assert config.model.hidden == (5, 3)
    assert resumed.out_dir == tmp_path
    assert plan(resume=tmp_path, rounds=9).config.num_rounds == 9


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"strategy": "fedavg"},
            "the checkpoint was made under another configuration (config hash sha256:",
        ),
        ({"rounds": 1}, "it has completed 1 rounds already (asked: 1)"),
        ({"out": "elsewhere"}, "--out has no effect with --resume"),
    ],
)
def test_a_resume_under_other_settings_is_refused(tmp_path, given, message):
    simulated_checkpoint(tmp_path, strategy="fedyogi", rounds=3)
    with pytest.raises(
        ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        plan(resume=tmp_path, **given)
    if "strategy" in given:
        with pytest.raises(ConfigError, match="strategy: 'fedyogi' -> 'fedavg'"):
            plan(resume=tmp_path, **given)


def test_a_private_run_with_temporary_ledgers_cannot_be_resumed(tmp_path):
    simulated_checkpoint(tmp_path, epsilon=1.0)
    with pytest.raises(ConfigError, match="would spend the hospitals' budget twice"):
        plan(resume=tmp_path)
    ledgers = tmp_path / "ledgers"
    simulated_checkpoint(tmp_path / "kept", epsilon=1.0, state_dir=ledgers)
    resumed = plan(resume=tmp_path / "kept")
    assert resumed.state_dir == ledgers.absolute() and resumed.privacy is not None
    assert resumed.privacy.planned_rounds == 14  # the rounds left


def test_resume_refuses_a_missing_or_foreign_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint in"):
        plan(resume=tmp_path)
    shutil.copy(VECTOR / CHECKPOINT_FILE, tmp_path / CHECKPOINT_FILE)
    with pytest.raises(ConfigError, match="was not written by hospfed-sim heart"):
        plan(resume=tmp_path)


def test_secure_aggregation_is_on_by_default_and_can_be_turned_off(tmp_path):
    secagg = plan(out=tmp_path / "a").config.secure_aggregation
    assert secagg is not None
    assert (secagg.num_shares, secagg.reconstruction_threshold) == (4, 3)
    off = plan(out=tmp_path / "b", secure_aggregation=False)
    assert off.config.secure_aggregation is None
    assert plan(out=tmp_path / "c", pooled=True).config.secure_aggregation is None


def test_secure_aggregation_with_fewer_than_two_hospitals_is_refused(tmp_path, capsys):
    code, err = run(["heart", "--min-hospitals", "1", "--out", str(tmp_path)], capsys)
    assert code == 2
    assert err == (
        "hospfed-sim: error: secure aggregation needs at least 2 hospitals per round "
        "(SecAgg+ masks each update with the others'); --min-hospitals is 1: raise it "
        "to 2 or more, or add --no-secure-aggregation\n"
    )
    plan(out=tmp_path, min_hospitals=1, secure_aggregation=False)  # accepted


def test_secure_aggregation_flags_have_no_effect_with_pooled(tmp_path, capsys):
    code, err = run(["heart", "--pooled", "--no-secure-aggregation"], capsys)
    assert code == 2
    assert "--secure-aggregation has no effect with --pooled" in err


def test_a_resume_keeps_the_runs_secure_aggregation_setting(tmp_path):
    # A run without it has no secure_aggregation in its identity, exactly as
    # checkpoints written before the switch existed: those resume unchanged.
    simulated_checkpoint(tmp_path / "on", strategy="fedyogi", rounds=3)
    simulated_checkpoint(
        tmp_path / "off", strategy="fedyogi", rounds=3, secure_aggregation=False
    )
    assert plan(resume=tmp_path / "on").config.secure_aggregation is not None
    assert plan(resume=tmp_path / "off").config.secure_aggregation is None
    with pytest.raises(ConfigError, match="secure_aggregation"):
        plan(resume=tmp_path / "off", secure_aggregation=True)


def test_an_interrupted_run_of_a_command_without_resume_does_not_offer_it(tmp_path):
    from hospfed.server.config import RunConfig
    from hospfed.simulations.cli import _kept
    from hospfed.simulations.options import HeartPlan

    config = RunConfig.from_mapping({"out-dir": str(tmp_path), "num-rounds": 9})
    heart = HeartPlan(config=config)
    own = HeartPlan(config=config, can_resume=False)
    assert f"resume with --resume {tmp_path}" in _kept(heart, 3)
    assert "--resume" not in _kept(own, 3)
    assert "does not resume: start it again" in _kept(own, 3)
    assert not own.resumable


def test_validation_and_personalisation_flags_reach_the_run(tmp_path):
    heart = plan(
        out=tmp_path / "r",
        validation_fraction=0.25,
        validation_seed=3,
        evaluate_on="validation-then-test",
        personalise="ditto",
        personal_steps=150,
        ditto_lambda=0.5,
        server_learning_rate=0.05,
        epsilon=1.0,
        local_steps=100,
    )
    config = heart.config
    assert config.task.split.validation_fraction == 0.25
    assert config.task.split.validation_seed == 3
    assert config.evaluate_on == "validation-then-test"
    assert config.personal.method == "ditto" and config.personal.local_steps == 150
    assert config.server_learning_rate == 0.05
    # the budget covers 15 rounds plus the personal steps, in whole rounds
    assert heart.privacy.planned_rounds == 17


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"validation_seed": 2}, "--validation-seed has no effect"),
        ({"validation_fraction": 1.0}, "must be in \\(0, 1\\)"),
        ({"evaluate_on": "validation"}, "holds none out"),
        ({"pooled": True, "personalise": "finetune"}, "--personalise has no effect"),
    ],
)
def test_evaluation_flags_that_cannot_work_are_refused(tmp_path, given, message):
    with pytest.raises(ConfigError, match=message):
        plan(out=tmp_path / "r", **given)
