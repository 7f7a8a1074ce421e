"""``tune.json`` and ``chosen.toml``: a known-answer file pins the format."""

import json
import tomllib
from pathlib import Path

from hospfed.common.datasets import FED_HEART_TASK
from hospfed.simulations.tune import Trial, TuneSetup, candidates, with_validation
from hospfed.simulations.tune_report import tune_report, write_chosen

VECTOR = Path(__file__).parent / "vectors" / "tune-v1.json"


def setup():
    return TuneSetup(
        base={"strategy": "fedyogi", "num-rounds": 15, "personalise": "finetune"},
        task=with_validation(FED_HEART_TASK, 0.2, 0),
        raw_schema=None,
        backend="keras",
        privacy=None,
        seeds=(0, 1),
        grid={"server-learning-rate": (0.01, 0.1)},
        objective="personalised",
    )


def report():
    tune = setup()
    grid = candidates(tune.grid)
    trials = [
        Trial(0, 0, 0.70, Path("runs/candidate-1-seed-0")),
        Trial(0, 1, 0.72, Path("runs/candidate-1-seed-1")),
        Trial(1, 0, 0.75, Path("runs/candidate-2-seed-0")),
        Trial(1, 1, 0.77, Path("runs/candidate-2-seed-1")),
    ]
    finals = [
        {
            "seed": seed,
            "global": 0.74 + seed / 100,
            "personalised": 0.76 + seed / 100,
            "hospitals": {"va": {"global": 0.7, "personalised": 0.72}},
            "results": f"runs/chosen-seed-{seed}",
        }
        for seed in (0, 1)
    ]
    return tune_report(tune, grid, trials, finals, "complete", 1)


def test_tune_json_matches_its_known_answer_file():
    written = json.loads(json.dumps(report()))
    assert written == json.loads(VECTOR.read_text())
    assert written["chosen"] == {"server-learning-rate": 0.1}
    assert written["chosen_on"]["split"] == "validation"


def test_chosen_toml_is_a_run_config(tmp_path):
    tune = setup()
    write_chosen(tmp_path, tune, candidates(tune.grid)[1])
    keys = tomllib.loads((tmp_path / "chosen.toml").read_text())
    assert keys == {
        "strategy": "fedyogi",
        "num-rounds": 15,
        "personalise": "finetune",
        "server-learning-rate": 0.1,
    }
    from hospfed.server.config import RunConfig

    assert RunConfig.from_mapping(keys).server_learning_rate == 0.1
