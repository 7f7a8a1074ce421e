"""Side-by-side: what each layer of the privacy stack costs in wall time.

The same job (Fed-Heart-Disease, 4 hospitals, FedYogi, 15 rounds, seed 0;
every hospital's data de-identified and encrypted, as always) run as a fresh
``hospfed-sim heart`` process per configuration, in one run of this script:

- plain: no DP, no secure aggregation;
- DP: DP-SGD at every hospital (epsilon 1);
- full stack: DP-SGD and SecAgg+ (the demo's configuration).

Prints the median wall time of each over ``--repeats`` and the ratios to
plain (target for the full stack: <= 1.3). Never fails on a timing.

    .venv/bin/python benchmarks/bench_privacy_stack.py [--rounds 15] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
CONFIGS = {
    "plain": ["--no-secure-aggregation"],
    "DP (epsilon 1)": ["--epsilon", "1", "--no-secure-aggregation"],
    "DP + SecAgg+": ["--epsilon", "1", "--secure-aggregation"],
}


def run(rounds: str, extra: list[str]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as out:
        command = [
            str(BIN / "hospfed-sim"),
            "heart",
            "--strategy",
            "fedyogi",
            "--rounds",
            rounds,
            "--out",
            f"{out}/run",
            *extra,
        ]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(
                f"failed ({done.returncode}): {' '.join(command)}\n"
                f"{done.stderr[-2000:]}"
            )
        metrics = json.loads(Path(f"{out}/run/metrics.json").read_text())
    return seconds, float(metrics["final"]["mean"]["accuracy"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", default="15")
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    medians = {}
    for name, extra in CONFIGS.items():
        runs = [run(options.rounds, extra) for _ in range(options.repeats)]
        medians[name] = statistics.median(s for s, _ in runs)
        accuracy = statistics.mean(a for _, a in runs)
        print(
            f"{name:16s} {medians[name]:6.1f} s median of {options.repeats}  "
            f"(mean local accuracy {accuracy:.3f})",
            flush=True,
        )
    plain = medians["plain"]
    for name, seconds in medians.items():
        print(f"ratio {name} / plain: {seconds / plain:5.2f}")
    print("target: DP + SecAgg+ / plain <= 1.30")


if __name__ == "__main__":
    main()
