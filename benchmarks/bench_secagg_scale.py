"""How SecAgg+'s cost grows with the hospitals: on vs off at 4, 20 and 50.

Virtual hospitals of a synthetic logistic-regression task (200 rows each,
IID), every hospital sampled each round, FedAvg, ``--rounds`` rounds of 100
local SGD steps; each configuration a fresh ``hospfed-sim run`` process.
The time compared is the rounds' wall time as the coordinator measures it
(``metrics.json`` ``run.seconds``; Ray's start-up and the hospitals'
preparation, identical with and without SecAgg+, are left out). With 20 and 50 hospitals
SecAgg+ uses 5 shares and threshold 3 (each hospital shares with its 4
nearest neighbours), with 4 hospitals 4 shares and threshold 3.

    .venv/bin/python benchmarks/bench_secagg_scale.py [--hospitals 4 20 50] \
        [--rounds 3] [--repeats 3]

Prints each wall time and the on/off ratio per size (target at 4: <= 1.3).
Never fails on a timing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from hospfed.common.task import dump_task, loads_task

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_virtual_hospitals import TASK

BIN = Path(sys.executable).parent


def run_seconds(task: Path, hospitals: int, rounds: int, secure: bool) -> float:
    with tempfile.TemporaryDirectory() as out:
        command = [
            str(BIN / "hospfed-sim"), "run", "--task", str(task),
            "--synthetic", str(200 * hospitals), "--hospitals", str(hospitals),
            "--rounds", str(rounds), "--learning-rate", "0.05", "--out", out,
            "--secure-aggregation" if secure else "--no-secure-aggregation",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"failed ({done.returncode}): {command}\n{done.stderr[-2000:]}")
        return float(
            json.loads((Path(out) / "metrics.json").read_text())["run"]["seconds"]
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hospitals", type=int, nargs="+", default=[4, 20, 50])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--repeats", type=int, default=1, help="report the median of this many"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        task = Path(tmp) / "task.toml"
        dump_task(loads_task(TASK), task)
        print(f"{'hospitals':>9}  {'off s':>7}  {'on s':>7}  {'on/off':>6}")
        for n in args.hospitals:
            off = statistics.median(
                run_seconds(task, n, args.rounds, secure=False)
                for _ in range(args.repeats)
            )
            on = statistics.median(
                run_seconds(task, n, args.rounds, secure=True)
                for _ in range(args.repeats)
            )
            print(f"{n:>9}  {off:7.1f}  {on:7.1f}  {on / off:6.2f}", flush=True)


if __name__ == "__main__":
    main()
