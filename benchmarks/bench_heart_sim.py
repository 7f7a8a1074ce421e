"""Side-by-side: ``hospfed-sim heart`` vs a plain Flower quickstart baseline.

Both do the same job (4 hospitals, 15 FedAvg rounds of 100 local SGD steps of
batch 4, local evaluation each round) on the same machine in the same run,
each as a fresh process (imports and Ray start-up included). Prints both
wall times and their ratio. Never fails on a timing.

    make bench        # or: .venv/bin/python benchmarks/bench_heart_sim.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(
            f"benchmark command failed ({done.returncode}): {' '.join(command)}\n"
            f"{done.stderr[-2000:]}"
        )
    return seconds, done.stdout


def main() -> None:
    rounds = sys.argv[1] if len(sys.argv) > 1 else "15"
    with tempfile.TemporaryDirectory() as out:
        hospfed_s, _ = timed(
            [
                str(BIN / "hospfed-sim"),
                "heart",
                "--rounds",
                rounds,
                "--no-secure-aggregation",  # the baseline has none
                "--out",
                str(Path(out) / "run"),
            ]
        )
        metrics = (Path(out) / "run" / "metrics.json").read_text()
    baseline_s, baseline_out = timed(
        [sys.executable, str(HERE / "baseline_flower_quickstart.py"), rounds]
    )
    import json

    hospfed_acc = json.loads(metrics)["final"]["mean"]["accuracy"]
    print(f"job: Fed-Heart-Disease, 4 hospitals, FedAvg, {rounds} rounds, seed 0")
    print(
        f"hospfed-sim heart         {hospfed_s:7.1f} s  "
        f"(mean local accuracy {hospfed_acc:.3f})"
    )
    print(
        f"Flower quickstart style   {baseline_s:7.1f} s  "
        f"({baseline_out.strip().splitlines()[-1]})"
    )
    print(f"ratio hospfed / baseline  {hospfed_s / baseline_s:7.2f}  (target <= 0.50)")


if __name__ == "__main__":
    main()
