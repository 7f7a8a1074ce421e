"""Cost of one DP-SGD step against a non-private step, in both backends.

For each backend, the same round (100 steps, batch 4, Cleveland's training
set) is timed without DP and with DP-SGD (Poisson sampling, per-example
clipping, Gaussian noise), after a warm-up round; the script prints the time
per step and the ratio DP / non-private, then the Keras DP-SGD step time
against Opacus's on the same model and data. All in one process, best of
``--repeats`` rounds. Target: a DP step at most 2x a non-private step.

    .venv/bin/python benchmarks/bench_dp_step.py
"""

from __future__ import annotations

import argparse
import time

from hospfed.client.backends import TrainingBackend, get_backend
from hospfed.client.privacy import DpStep, poisson_sample_rate
from hospfed.common.datasets.heart import load_hospital
from hospfed.common.model import ModelSpec, initial_weights
from hospfed.common.training import TrainPlan

STEPS = 100


def per_step(
    backend: TrainingBackend, plan: TrainPlan, dp: DpStep | None, repeats: int
) -> float:
    data = load_hospital("cleveland")
    backend.train(data.x_train, data.y_train, plan, dp)  # warm-up and tracing
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        backend.train(data.x_train, data.y_train, plan, dp)
        best = min(best, time.perf_counter() - start)
    return best / plan.local_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    options = parser.parse_args()
    data = load_hospital("cleveland")
    plan = TrainPlan(learning_rate=0.001, local_steps=STEPS, batch_size=4)
    dp = DpStep(
        noise_multiplier=1.0,
        clip_norm=1.0,
        sample_rate=poisson_sample_rate(len(data.y_train), plan.batch_size),
    )
    for spec in (ModelSpec(13), ModelSpec(13, hidden=(32,))):
        dp_times = {}
        for name in ("keras", "torch"):
            backend = get_backend(name, spec)
            backend.set_weights(initial_weights(spec, 0))
            plain = per_step(backend, plan, None, options.repeats)
            private = per_step(backend, plan, dp, options.repeats)
            dp_times[name] = private
            print(
                f"{name:<6} hidden={spec.hidden!s:<6} non-private "
                f"{plain * 1e3:7.3f} ms/step  DP-SGD {private * 1e3:7.3f} ms/step  "
                f"ratio {private / plain:5.2f}",
                flush=True,
            )
        print(
            f"keras DP-SGD / opacus DP-SGD (hidden={spec.hidden}): "
            f"{dp_times['keras'] / dp_times['torch']:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
