"""Deployment numbers: hospital start-up and memory, deployed vs simulated runs.

On loopback, in one run of this script: a daemon (``hospfed-server start``
with TLS and node authentication) and the four Fed-Heart-Disease hospitals,
each with its own data path and node key, as real processes.

1. A hospital process per backend: cold start to "online" at the daemon,
   and its resident memory (the process and its children) once online.
2. The same job (FedAvg, ``--rounds`` rounds, no DP, no SecAgg+, Keras):
   deployed with warm workers, deployed with ``--no-warm`` (Flower's fresh
   ``flwr-clientapp`` process per message decrypts the data and imports
   TensorFlow each time), and in simulation (``hospfed-sim heart``). Prints
   wall times, seconds per round and the ratios. Flower's fixed 3 s polls
   (the ServerApp's grid and an idle SuperNode) put a floor of about two
   polls on each train or evaluate step.

Four hospitals, not three: the simulation always runs the whole federation,
and the comparison must be the same job. Never fails on a timing.

    .venv/bin/python benchmarks/bench_deployment.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hospfed.common.daemons import free_loopback_port
from hospfed.common.datasets.heart import HOSPITALS

BIN = Path(sys.executable).parent


def cli(*args: object) -> str:
    done = subprocess.run(
        [str(BIN / str(args[0])), *map(str, args[1:])],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its descendants (KiB)."""
    from hospfed.simulations.processes import descendants

    total = 0
    for proc in [pid, *(p for p, _ in descendants(pid))]:
        try:
            for line in Path(f"/proc/{proc}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


class Bench:
    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_loopback_port()
        self.state = root / "state"
        cli("hospfed-server", "certs", "--out", root / "certs", "--host", "bench.test")
        self.daemon = subprocess.Popen(
            [
                str(BIN / "hospfed-server"),
                "start",
                "--state",
                str(self.state),
                "--certs",
                str(root / "certs"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.wait((self.state / "daemon.json").exists, 60)
        for name in HOSPITALS:
            site = root / name
            (site / "data").mkdir(parents=True, mode=0o700)
            cli("hospfed-client", "keygen", "--out", site / "data" / "site.key")
            cli(
                "hospfed-client",
                "demo-export",
                "--hospital",
                name,
                "--out",
                site / "raw.csv",
            )
            cli(
                "hospfed-client",
                "prepare",
                site / "raw.csv",
                "--out",
                site / "data" / "site.hfd",
                "--key",
                site / "data" / "site.key",
            )
            (site / "raw.csv").unlink()
            cli("hospfed-client", "node-key", "--out", site / "node")
            cli(
                "hospfed-server",
                "admit",
                name,
                site / "node" / "node.pub",
                "--state",
                self.state,
            )

    @staticmethod
    def wait(condition, timeout: float) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError
            time.sleep(0.2)

    def online(self) -> set[str]:
        try:
            rows = json.loads(cli("hospfed-server", "hospitals", "--state", self.state))
        except subprocess.CalledProcessError:
            return set()
        return {r["hospital"] for r in rows if r["status"] == "online"}

    def connected(self, name: str, tag: str) -> bool:
        log = self.root / name / f"state-{tag}" / "supernode.log"
        return log.exists() and "SuperNode ID" in log.read_text()

    def start(
        self, name: str, backend: str, tag: str, *extra: str
    ) -> subprocess.Popen[bytes]:
        site = self.root / name
        return subprocess.Popen(
            [
                str(BIN / "hospfed-client"),
                "start",
                "--server",
                f"127.0.0.1:{self.port}",
                "--ca",
                str(self.root / "certs" / "ca.pem"),
                "--node-key",
                str(site / "node" / "node.key"),
                "--data",
                str(site / "data" / "site.hfd"),
                "--key",
                str(site / "data" / "site.key"),
                "--state",
                str(site / f"state-{tag}"),
                "--hospital",
                name,
                "--backend",
                backend,
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self, processes: list[subprocess.Popen[bytes]]) -> None:
        for p in processes:
            p.send_signal(signal.SIGTERM)
        for p in processes:
            p.wait(timeout=60)

    def deployed_run(self, rounds: int, tag: str, *extra: str) -> float:
        hospitals = [self.start(n, "keras", tag, *extra) for n in HOSPITALS]
        self.wait(lambda: all(self.connected(n, tag) for n in HOSPITALS), 180)
        start = time.perf_counter()
        cli(
            "hospfed-server",
            "run",
            "--state",
            self.state,
            f"num-rounds={rounds}",
            "min-hospitals=4",
            "strategy=fedavg",
        )
        seconds = time.perf_counter() - start
        self.stop(hospitals)
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp))
        try:
            for backend in ("keras", "torch"):
                started = time.perf_counter()
                proc = bench.start("cleveland", backend, backend)
                bench.wait(lambda b=backend: bench.connected("cleveland", b), 180)
                ready = time.perf_counter() - started
                print(
                    f"{backend} hospital: online after {ready:.1f} s, "
                    f"resident memory {rss_kib(proc.pid) / 1024:.0f} MiB",
                    flush=True,
                )
                bench.stop([proc])
            warm = bench.deployed_run(args.rounds, "warm")
            cold = bench.deployed_run(args.rounds, "cold", "--no-warm")
        finally:
            bench.daemon.send_signal(signal.SIGTERM)
            bench.daemon.wait(timeout=60)
        start = time.perf_counter()
        cli(
            "hospfed-sim",
            "heart",
            "--rounds",
            args.rounds,
            "--strategy",
            "fedavg",
            "--backend",
            "keras",
            "--no-secure-aggregation",
            "--out",
            Path(tmp) / "sim",
        )
        sim = time.perf_counter() - start
    r = args.rounds
    print(f"{r} rounds, 4 hospitals, FedAvg, Keras, no DP, no SecAgg+:")
    print(f"  deployed, warm workers : {warm:7.1f} s ({warm / r:.1f} s/round)")
    print(f"  deployed, --no-warm    : {cold:7.1f} s ({cold / r:.1f} s/round)")
    print(f"  simulation (hospfed-sim): {sim:6.1f} s ({sim / r:.1f} s/round)")
    print(f"  deployed warm / simulation: {warm / sim:.2f}x")
    print(f"  deployed cold / warm: {cold / warm:.2f}x")


if __name__ == "__main__":
    main()
