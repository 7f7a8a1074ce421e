"""Accuracy of every strategy on Fed-Heart-Disease, mean and spread over seeds.

Runs ``hospfed-sim heart`` (the real simulation path) for each strategy and
seed plus the pooled reference, and prints FLamby's metric: the mean over
the four hospitals of local test accuracy, as mean +- std over seeds.
``--epsilons`` repeats each strategy with DP-SGD at every hospital at each
budget (delta 1e-3 over the whole run); ``--backend mixed`` puts two
hospitals on Keras and two on PyTorch.

    .venv/bin/python benchmarks/accuracy_heart.py --seeds 5 --strategies fedavg
    .venv/bin/python benchmarks/accuracy_heart.py --strategies fedavg,fedyogi \
        --no-secure-aggregation
    .venv/bin/python benchmarks/accuracy_heart.py --strategies fedyogi \
        --epsilons 0.5,1,2,8
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


def run_one(
    strategy: str,
    seed: int,
    out: Path,
    *,
    backend: str,
    epsilon: str,
    secure: bool = True,
) -> float:
    args = ["--pooled"] if strategy == "pooled" else ["--strategy", strategy]
    if strategy != "pooled":
        args += ["--backend", backend]
        args += ["--epsilon", epsilon] if epsilon else []
        args += [] if secure else ["--no-secure-aggregation"]
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
    parser.add_argument("--backend", default="keras")
    parser.add_argument("--epsilons", default="", help="e.g. 0.5,1,2,8")
    parser.add_argument(
        "--no-secure-aggregation",
        dest="secure",
        action="store_false",
        help="run without SecAgg+ (its quantisation moves results slightly)",
    )
    options = parser.parse_args()
    runs = [
        (strategy, epsilon)
        for strategy in options.strategies.split(",")
        for epsilon in (options.epsilons.split(",") if options.epsilons else [""])
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for strategy, epsilon in runs:
            name = f"{strategy}-eps{epsilon}" if epsilon else strategy
            scores = [
                run_one(
                    strategy,
                    seed,
                    Path(tmp) / f"{name}-{seed}",
                    backend=options.backend,
                    epsilon=epsilon,
                    secure=options.secure,
                )
                for seed in range(options.seeds)
            ]
            label = f"{name} ({options.backend})"
            print(
                f"{label:<24} mean local accuracy {statistics.mean(scores):.3f} "
                f"+- {statistics.pstdev(scores):.3f} over seeds 0-{options.seeds - 1}: "
                + " ".join(f"{s:.3f}" for s in scores),
                flush=True,
            )


if __name__ == "__main__":
    main()
