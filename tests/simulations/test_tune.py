"""``hospfed-sim tune``'s pieces: grids, seeds, the choice, the refusals."""

from dataclasses import replace
from pathlib import Path

import pytest

from hospfed.client.privacy import PrivacySettings
from hospfed.common.datasets import FED_HEART_TASK
from hospfed.common.errors import ConfigError, HospfedError
from hospfed.simulations.tune import (
    Candidate,
    Trial,
    TuneSetup,
    candidates,
    choose,
    default_grid,
    parse_grid,
    run_config,
    summarise,
    with_validation,
)
from hospfed.simulations.tune_cli import parse_seeds

HELD = with_validation(FED_HEART_TASK, 0.2, 0)


def setup(**changes):
    values = {
        "base": {"strategy": "fedyogi", "num-rounds": 3},
        "task": HELD,
        "raw_schema": None,
        "backend": "keras",
        "privacy": None,
        "seeds": (0, 1),
        "grid": {"server-learning-rate": (0.01, 0.1)},
    }
    return TuneSetup(**(values | changes))


def test_a_grid_is_every_combination_in_order():
    grid = parse_grid(["learning-rate=0.01,0.03", "local-steps=10,20,40"])
    assert grid == {"learning-rate": (0.01, 0.03), "local-steps": (10, 20, 40)}
    assert isinstance(grid["local-steps"][0], int)
    points = candidates(grid)
    assert len(points) == 6
    assert points[0].settings == {"learning-rate": 0.01, "local-steps": 10}
    assert points[-1].label() == "learning-rate=0.03 local-steps=40"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("momentum=0.9", "cannot be tuned"),
        ("learning-rate", "KEY=V1,V2"),
        ("learning-rate=", "KEY=V1,V2"),
        ("learning-rate=fast", "takes numbers"),
        ("local-steps=1.5", "whole numbers"),
        ("learning-rate=0.1,0.1", "listed twice"),
    ],
)
def test_bad_grid_entries_are_refused(entry, message):
    with pytest.raises(ConfigError, match=message):
        parse_grid([entry])


def test_a_key_given_twice_is_refused():
    with pytest.raises(ConfigError, match="given twice"):
        parse_grid(["learning-rate=0.1", "learning-rate=0.2"])


def test_default_grids_tune_the_step_size_that_matters():
    assert set(default_grid("fedadam")) == {"server-learning-rate"}
    assert set(default_grid("fedavg")) == {"learning-rate"}


@pytest.mark.parametrize(
    ("text", "seeds"),
    [("0-4", (0, 1, 2, 3, 4)), ("3,1,3", (3, 1)), ("0-1,5", (0, 1, 5))],
)
def test_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "a", "-1", "2-x"])
def test_bad_seeds_are_refused(text):
    with pytest.raises(ConfigError, match="--seeds"):
        parse_seeds(text)


def trials(scores):
    return [
        Trial(candidate=c, seed=s, score=v, out_dir=Path("."))
        for (c, s), v in scores.items()
    ]


def test_the_best_mean_over_seeds_is_chosen_first_on_ties():
    tune = setup()
    grid = candidates(tune.grid)
    rows = summarise(
        tune, grid, trials({(0, 0): 0.7, (0, 1): 0.8, (1, 0): 0.9, (1, 1): 0.6})
    )
    assert [r["mean"] for r in rows] == pytest.approx([0.75, 0.75])
    assert choose(tune, rows) == 0  # a tie: the first in grid order
    rows = summarise(
        tune, grid, trials({(0, 0): 0.7, (0, 1): 0.8, (1, 0): 0.9, (1, 1): 0.7})
    )
    assert choose(tune, rows) == 1


def test_an_incomplete_candidate_is_never_chosen():
    tune = setup()
    grid = candidates(tune.grid)
    rows = summarise(tune, grid, trials({(0, 0): 0.5, (0, 1): 0.5, (1, 0): 0.99}))
    assert choose(tune, rows) == 0
    with pytest.raises(HospfedError, match="every seed"):
        choose(tune, summarise(tune, grid, trials({(1, 0): 0.99})))


def test_rmse_is_minimised():
    continuous = replace(HELD, label=replace(HELD.label, kind="continuous"))
    tune = setup(task=continuous)
    assert tune.lower_is_better
    rows = summarise(
        tune,
        candidates(tune.grid),
        trials({(0, 0): 2.0, (0, 1): 2.0, (1, 0): 1.0, (1, 1): 1.0}),
    )
    assert choose(tune, rows) == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"task": FED_HEART_TASK}, "validation set"),
        ({"seeds": ()}, "at least one seed"),
        ({"grid": {"clip-norm": (0.5, 1.0)}}, "without --epsilon"),
        ({"grid": {"ditto-lambda": (0.1, 1.0)}}, "without --personalise"),
        ({"objective": "personalised"}, "needs --personalise"),
        ({"objective": "best"}, "global or personalised"),
    ],
)
def test_setups_that_cannot_work_are_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        setup(**changes)


def test_candidate_runs_score_validation_and_carry_the_candidate(tmp_path):
    privacy = PrivacySettings(epsilon=1.0, delta=1e-3, clip_norm=1.0)
    tune = setup(
        privacy=privacy, grid={"clip-norm": (0.5, 2.0), "learning-rate": (0.02,)}
    )
    config, dp = run_config(
        tune,
        Candidate({"clip-norm": 2.0, "learning-rate": 0.02}),
        seed=4,
        evaluate_on="validation",
        out_dir=tmp_path,
    )
    assert config.evaluate_on == "validation" and config.seed == 4
    assert config.train.learning_rate == 0.02
    assert config.task.split.validation_fraction == 0.2
    assert dp.clip_norm == 2.0 and privacy.clip_norm == 1.0


def test_with_validation_refuses_a_fraction_outside_0_1():
    with pytest.raises(ConfigError, match="validation-fraction"):
        with_validation(FED_HEART_TASK, 1.0, 0)


def test_sigterm_stops_tuning_with_143_and_keeps_what_was_measured(tmp_path):
    import json
    import signal
    import subprocess
    import sys

    out = tmp_path / "tune"
    exe = Path(sys.executable).with_name("hospfed-sim")
    process = subprocess.Popen(
        [str(exe), "tune", "--seeds", "0", "--rounds", "1", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()  # printed once the handlers are in place
    assert first.startswith("tuning fedyogi: 3 candidates")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("hospfed-sim: interrupted")
    assert json.loads((out / "tune.json").read_text())["status"] == "interrupted"


def test_each_candidates_dp_budget_covers_its_rounds_and_personal_steps(tmp_path):
    privacy = PrivacySettings(epsilon=1.0, delta=1e-3, planned_rounds=3)
    tune = setup(
        base={
            "strategy": "fedyogi",
            "num-rounds": 3,
            "personalise": "ditto",
            "personal-steps": 100,
        },
        privacy=privacy,
        grid={"local-steps": (20, 100)},
    )
    planned = [
        run_config(tune, c, seed=0, evaluate_on="validation", out_dir=tmp_path)[1]
        for c in candidates(tune.grid)
    ]
    # 100 personal steps fill 5 rounds of 20 steps, or 1 of 100
    assert [p.planned_rounds for p in planned] == [8, 4]
