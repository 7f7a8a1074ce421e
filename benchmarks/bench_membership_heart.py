"""Membership-inference audit of a 2x256 MLP on Fed-Heart-Disease, per hospital.

Trains ``hospfed-sim heart --hidden 256,256`` (FedYogi, 15 rounds) without DP
and with DP-SGD at ``--epsilon`` (default 1), then at each hospital runs the
hospital's own check, ``hospfed-client privacy-check``, on that hospital's
prepared data (its training rows are the members, its test rows the
non-members) and prints the attack AUC and advantage with 95% bootstrap
intervals. Each hospital's data is prepared here as in the simulation
(synthetic identifiers on the real rows, the built-in schema), which gives
the same rows and the same split.

    .venv/bin/python benchmarks/bench_membership_heart.py [--seed 0] [--epsilon 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from hospfed.common.datasets.heart import HOSPITALS

BIN = Path(sys.executable).parent


def run(*args: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {args}\n{done.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epsilon", default="1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for hospital in HOSPITALS:
            key, raw = root / f"{hospital}.key", root / f"{hospital}.csv"
            run(str(BIN / "hospfed-client"), "keygen", "--out", str(key))
            run(str(BIN / "hospfed-client"), "demo-export", "--hospital", hospital,
                "--out", str(raw))  # fmt: skip
            run(str(BIN / "hospfed-client"), "prepare", str(raw), "--key", str(key),
                "--out", str(root / f"{hospital}.hfd"))  # fmt: skip
        for label, extra in (
            ("no DP", []),
            (f"DP eps {args.epsilon}", ["--epsilon", args.epsilon]),
        ):
            out = root / label.replace(" ", "-")
            run(str(BIN / "hospfed-sim"), "heart", "--strategy", "fedyogi",
                "--hidden", "256,256", "--seed", str(args.seed), *extra,
                "--out", str(out))  # fmt: skip
            accuracy = json.loads((out / "metrics.json").read_text())["final"]["mean"]
            print(f"{label}: mean local accuracy {accuracy['accuracy']:.3f}")
            for hospital in HOSPITALS:
                report = root / f"{hospital}-{out.name}.json"
                data, key = root / f"{hospital}.hfd", root / f"{hospital}.key"
                check = [str(BIN / "hospfed-client"), "privacy-check", str(data)]
                run(
                    *check, "--model", str(out), "--key", str(key), "--out", str(report)
                )
                a = json.loads(report.read_text())
                print(
                    f"  {hospital:<12} members {a['members']:>3} non-members "
                    f"{a['non_members']:>3}  AUC {a['auc']:.3f} "
                    f"[{a['auc_ci'][0]:.3f}, {a['auc_ci'][1]:.3f}]  advantage "
                    f"{a['advantage']:.3f} [{a['advantage_ci'][0]:.3f}, "
                    f"{a['advantage_ci'][1]:.3f}]  detectable AUC "
                    f"{a['detectable_auc']:.3f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
