"""Accuracy of every strategy on Fed-Heart-Disease, mean and spread over seeds.

Runs ``hospfed-sim heart`` (the real simulation path) for each strategy and
seed plus the pooled reference, and prints FLamby's metric: the mean over
the four hospitals of local test accuracy, as mean +- std over seeds.

    .venv/bin/python benchmarks/accuracy_heart.py --seeds 5 --strategies fedavg
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ALL = ["fedavg", "fedprox", "fedadam", "fedyogi", "fedadagrad", "pooled"]


def run_one(strategy: str, seed: int, out: Path) -> float:
    args = ["--pooled"] if strategy == "pooled" else ["--strategy", strategy]
    exe = Path(sys.executable).with_name("hospfed-sim")
    subprocess.run(
        [str(exe), "heart", *args, "--seed", str(seed), "--out", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    metrics = json.loads((out / "metrics.json").read_text())
    return float(metrics["final"]["mean"]["accuracy"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--strategies", default=",".join(ALL))
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for strategy in options.strategies.split(","):
            scores = [
                run_one(strategy, seed, Path(tmp) / f"{strategy}-{seed}")
                for seed in range(options.seeds)
            ]
            print(
                f"{strategy:<11} mean local accuracy {statistics.mean(scores):.3f} "
                f"+- {statistics.pstdev(scores):.3f} over seeds 0-{options.seeds - 1}: "
                + " ".join(f"{s:.3f}" for s in scores),
                flush=True,
            )


if __name__ == "__main__":
    main()
