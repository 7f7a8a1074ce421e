"""The three commands: help, one-line user errors with exit 2, pooled run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from hospfed.common.cli import run_app
from hospfed.common.errors import RoundFailedError
from hospfed.simulations.cli import main as sim_main

BIN = Path(sys.executable).parent


def run(argv, capsys):
    with pytest.raises(SystemExit) as info:
        sim_main(argv)
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["heart", "--strategy", "fedsgd"],
            "hospfed-sim: error: strategy: unknown value 'fedsgd'; allowed: fedavg, "
            "fedprox, fedadam, fedyogi, fedadagrad",
        ),
        (
            ["heart", "--rounds", "0"],
            "hospfed-sim: error: Invalid value for '--rounds'",
        ),
        (
            ["heart", "--rounds", "many"],
            "hospfed-sim: error: Invalid value for '--rounds'",
        ),
        (
            ["heart", "--min-hospitals", "5"],
            "hospfed-sim: error: min-hospitals is 5 but the simulation has only 4 hospitals",
        ),
        (["lungs"], "hospfed-sim: error: No such command 'lungs'"),
        (
            ["heart", "--epsilon", "0"],
            "hospfed-sim: error: epsilon must be > 0, got 0.0",
        ),
        (
            ["heart", "--epsilon", "-1"],
            "hospfed-sim: error: epsilon must be > 0, got -1.0",
        ),
        (
            ["heart", "--epsilon", "1", "--delta", "1.5"],
            "hospfed-sim: error: delta must be in (0, 1), got 1.5",
        ),
        (
            ["heart", "--epsilon", "1", "--clip-norm", "0"],
            "hospfed-sim: error: clip-norm must be > 0, got 0.0",
        ),
        (
            ["heart", "--backend", "jax"],
            "hospfed-sim: error: unknown backend 'jax'; allowed: keras, torch, mixed",
        ),
        (
            ["heart", "--pooled", "--epsilon", "1"],
            "hospfed-sim: error: --epsilon has no effect with --pooled (the pooled "
            "reference trains --epochs epochs centrally, on Keras, without DP); drop it",
        ),
        (
            ["heart", "--pooled", "--backend", "keras"],
            "hospfed-sim: error: --backend has no effect with --pooled",
        ),
        (
            ["heart", "--pooled", "--rounds", "3"],
            "hospfed-sim: error: --rounds has no effect with --pooled",
        ),
        (
            ["heart", "--pooled", "--strategy", "fedyogi"],
            "hospfed-sim: error: --strategy has no effect with --pooled",
        ),
        (
            ["heart", "--pooled", "--min-hospitals", "2"],
            "hospfed-sim: error: --min-hospitals has no effect with --pooled",
        ),
        (
            ["heart", "--pooled", "--local-steps", "5"],
            "hospfed-sim: error: --local-steps has no effect with --pooled",
        ),
        (
            ["heart", "--pooled", "--resume", "somewhere"],
            "hospfed-sim: error: --resume has no effect with --pooled",
        ),
        (
            ["heart", "--epochs", "3"],
            "hospfed-sim: error: --epochs has no effect without --pooled (a federated "
            "run lasts --rounds rounds); drop it",
        ),
        (
            ["heart", "--delta", "1e-5"],
            "hospfed-sim: error: --delta has no effect without --epsilon (the run is "
            "non-private); add --epsilon E, or drop --delta",
        ),
        (
            ["heart", "--clip-norm", "2"],
            "hospfed-sim: error: --clip-norm has no effect without --epsilon",
        ),
        (
            ["heart", "--state-dir", "ledgers"],
            "hospfed-sim: error: --state-dir has no effect without --epsilon",
        ),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(argv, message, capsys, tmp_path):
    code, _, err = run(
        [*argv, "--out", str(tmp_path / "o")] if argv[0] == "heart" else argv, capsys
    )
    assert code == 2
    assert err.startswith(message)
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_failed_run_exits_non_zero_with_the_reason(capsys):
    app = typer.Typer()

    @app.command()
    def go() -> None:
        raise RoundFailedError(
            server_round=2,
            phase="train",
            received=0,
            required=4,
            failures=["node 7: data missing"],
        )

    assert run_app(app, "prog", []) == 3
    err = capsys.readouterr().err
    assert (
        "prog: error: round 2 (train) failed" in err and "node 7: data missing" in err
    )


@pytest.mark.parametrize("command", ["hospfed-sim", "hospfed-server", "hospfed-client"])
def test_every_command_has_help(command):
    done = subprocess.run(
        [str(BIN / command), "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout


def test_heart_help_lists_the_documented_flags():
    done = subprocess.run(
        [str(BIN / "hospfed-sim"), "heart", "--help"], capture_output=True, text=True
    )
    for flag in ("--rounds", "--strategy", "--seed", "--out", "--pooled"):
        assert flag in done.stdout


def test_pooled_reference_writes_a_results_directory(capsys, tmp_path):
    code, out, _ = run(
        ["heart", "--pooled", "--epochs", "3", "--out", str(tmp_path)], capsys
    )
    assert code == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["run"]["strategy"] == "pooled"
    assert [r["round"] for r in metrics["rounds"]] == [1, 2, 3]
    assert set(metrics["final"]["evaluate"]) == {
        "cleveland",
        "hungary",
        "switzerland",
        "va",
    }
    assert metrics["final"]["mean"]["accuracy"] > 0.6
    assert "results:" in out and "mean" in out


def test_a_schema_mismatch_stops_the_run_before_it_starts(
    capsys, monkeypatch, tmp_path
):
    from hospfed.common.datasets import heart
    from hospfed.common.datasets import heart_export as raw_export

    tables = {h: t.copy() for h, t in heart.load_clinical_tables().items()}
    tables["va"].loc[0, "age"] = 300
    monkeypatch.setattr(raw_export, "load_clinical_tables", lambda: tables)
    code, _, err = run(["heart", "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    assert err.startswith("hospfed-sim: error: raw export ")
    assert "'age': 1 values outside [0, 120]" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_an_unusable_output_path_is_refused_before_training(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, out, err = run(["heart", "--pooled", "--out", str(blocker / "run")], capsys)
    assert code == 2
    assert err == (
        f"hospfed-sim: error: output {blocker / 'run'}: {blocker} exists and is not "
        "a directory\n"
    )
    assert "round" not in out


def test_a_skipped_round_is_shown_on_its_progress_line():
    from hospfed.server.history import RoundRecord
    from hospfed.simulations.progress import _epsilon_text

    record = RoundRecord(server_round=2, skipped="secure aggregation halted at unmask")
    assert _epsilon_text(record).endswith(
        "| SKIPPED, weights unchanged: secure aggregation halted at unmask"
    )
    assert "SKIPPED" not in _epsilon_text(RoundRecord(server_round=2))


def test_progress_shows_the_secure_aggregation_stage_of_a_round():
    from io import StringIO

    from rich.console import Console

    from hospfed.simulations.progress import RoundProgress

    progress = RoundProgress(3, "heart", Console(file=StringIO()))
    progress.on_stage(2, "collect masked vectors")
    task = progress.progress.tasks[0]
    assert task.description == "heart · round 2: collect masked vectors"
