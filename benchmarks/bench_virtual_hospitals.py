"""Hundreds of virtual hospitals: ``hospfed-sim run`` vs plain Flower.

500 virtual hospitals from a synthetic logistic-regression task (IID split
of 100,000 rows), 10 FedAvg rounds, 10% of the hospitals sampled per round
to train and to evaluate, 100 local SGD steps of batch 4. hospfed runs its
whole path: every hospital prepared (key, de-identification checks, AES-GCM
file), trained only from its encrypted file, the model kept warm; secure
aggregation off (the baseline has none). The baseline is the same job
written as Flower's quickstarts do (``baseline_flower_virtual.py``) on the
same partitions' arrays. Each runs as a fresh process (imports and Ray
start-up included); the peak memory is the largest sum of PSS over the
process and all its descendants (Ray's workers), sampled every second.

    .venv/bin/python benchmarks/bench_virtual_hospitals.py [--hospitals 500]

Prints wall times, peak memory and their ratios. Never fails on a timing.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from hospfed.common.task import dump_task, loads_task
from hospfed.simulations.partition import iid_partition
from hospfed.simulations.processes import descendants
from hospfed.simulations.synthetic import synthetic_rows

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
TASK = """
format = "hospfed-task"
format-version = 1
name = "synthetic-logistic"
schema = "synthetic-logistic"
[label]
column = "outcome"
kind = "binary"
[[features]]
column = "x1"
[[features]]
column = "x2"
[[features]]
column = "x3"
[[features]]
column = "flag"
kind = "binary"
[[features]]
column = "group"
kind = "categorical"
levels = ["a", "b", "c", "d"]
drop-first = true
[split]
train-fraction = 0.7
seed = 5
stratify = true
"""
LEARNING_RATE = 0.05


def _pss_kib(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    match = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def measured(command: list[str]) -> tuple[float, float, str]:
    """Run ``command``; return wall seconds, peak tree PSS in MiB, stdout."""
    start = time.perf_counter()
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            pids = [child.pid, *(p for p, _ in descendants(child.pid))]
            peak = max(peak, sum(_pss_kib(p) for p in pids))
            time.sleep(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = child.communicate()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if child.returncode != 0:
        sys.exit(
            f"benchmark command failed ({child.returncode}): {command}\n{err[-2000:]}"
        )
    return seconds, peak / 1024, out


def write_partitions(task, rows: int, hospitals: int, seed: int, parts: Path) -> None:
    """The arrays each hospital trains on, for the baseline (same split)."""
    from hospfed.client.features import build_inputs

    table = synthetic_rows(task, rows, seed=seed)
    for i, positions in enumerate(iid_partition(rows, hospitals, seed=seed)):
        data = build_inputs(table.iloc[positions], task, f"site-{i}")
        np.savez(
            parts / f"part-{i:04d}.npz",
            x_train=data.x_train,
            y_train=data.y_train,
            x_test=data.x_test,
            y_test=data.y_test,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hospitals", type=int, default=500)
    parser.add_argument("--rows-per-hospital", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--fraction", type=float, default=0.1)
    args = parser.parse_args()
    rows = args.hospitals * args.rows_per_hospital
    task = loads_task(TASK)
    with tempfile.TemporaryDirectory() as tmp:
        task_file = Path(tmp) / "task.toml"
        dump_task(task, task_file)
        hospfed_s, hospfed_mib, out = measured(
            [
                str(BIN / "hospfed-sim"), "run", "--task", str(task_file),
                "--synthetic", str(rows), "--hospitals", str(args.hospitals),
                "--fraction-fit", str(args.fraction), "--rounds", str(args.rounds),
                "--learning-rate", str(LEARNING_RATE), "--no-secure-aggregation",
                "--out", str(Path(tmp) / "run"),
            ]
        )  # fmt: skip
        prepared = re.search(r"encrypted datasets \(([\d.]+) s\)", out)
        prepare_s = float(prepared.group(1)) if prepared else float("nan")
        mean = re.search(r"│ mean\s+│\s+│\s+([\d.]+)", out)
        parts = Path(tmp) / "parts"
        parts.mkdir()
        write_partitions(task, rows, args.hospitals, 0, parts)
        base_s, base_mib, base_out = measured(
            [
                sys.executable, str(HERE / "baseline_flower_virtual.py"), str(parts),
                str(args.rounds), str(args.fraction), str(LEARNING_RATE),
            ]
        )  # fmt: skip
    print(
        f"{args.hospitals} virtual hospitals, {args.rounds} rounds, "
        f"{args.fraction:.0%} sampled per round, {rows} synthetic rows"
    )
    print(
        f"hospfed-sim run      {hospfed_s:7.1f} s  (of which preparing the "
        f"hospitals {prepare_s:.1f} s)  peak {hospfed_mib:7.0f} MiB  "
        f"mean accuracy {mean.group(1) if mean else '?'}"
    )
    print(
        f"plain Flower         {base_s:7.1f} s  peak {base_mib:7.0f} MiB  "
        f"{base_out.strip().splitlines()[-1]}"
    )
    print(
        f"ratio hospfed / plain: wall {hospfed_s / base_s:.2f} (without the "
        f"preparation {(hospfed_s - prepare_s) / base_s:.2f}; target <= 0.5), "
        f"peak memory {hospfed_mib / base_mib:.2f} (target <= 1)"
    )


if __name__ == "__main__":
    main()
