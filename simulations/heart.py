"""The Fed-Heart-Disease scenario: four real hospitals on one machine.

``prepare_sites`` runs each hospital's data path first, as its data steward
would (key, raw export with synthetic identifiers, de-identification,
encryption); ``run_federated`` then runs the same ServerApp and ClientApp a
deployment runs, with Flower's simulation runtime (one virtual SuperNode
per hospital, two worker processes on a 2-core machine, each keeping its
model warm), every hospital reading only its encrypted dataset.
``run_pooled`` trains the same model centrally on the pooled training data
(FLamby's reference: Adam, learning rate 0.001, batch 4, 50 epochs) and
scores it on each hospital's own test set.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hospfed.client.app import make_client_app, settings_by_partition
from hospfed.client.backends import BACKENDS
from hospfed.client.data import NodeSettings
from hospfed.client.prepare import prepare_export
from hospfed.client.privacy import PrivacySettings
from hospfed.client.vault import generate_key_file
from hospfed.common.datasets.heart import HOSPITALS, load_hospital, load_pooled
from hospfed.common.datasets.heart_export import hospital_raw_export, write_raw_export
from hospfed.common.datasets.heart_schema import FED_HEART_RAW_SCHEMA
from hospfed.common.errors import ConfigError, HospfedError
from hospfed.common.model import initial_weights
from hospfed.common.training import TrainPlan
from hospfed.server.app import RunResult, make_server_app
from hospfed.server.config import RunConfig
from hospfed.server.history import RoundObserver, RunHistory
from hospfed.server.results import describe_run, write_results
from hospfed.simulations.flower import flower_run_simulation

SIM_BACKENDS: tuple[str, ...] = (*BACKENDS, "mixed")
"""``mixed``: Cleveland and Hungary on Keras, Switzerland and VA on PyTorch."""

POOLED_EPOCHS = 50
POOLED_LEARNING_RATE = 0.001  # FLamby's pooled Adam


def backend_config(num_hospitals: int, *, verbose: bool) -> dict[str, Any]:
    """Flower simulation resources: one CPU per worker, at most one per core.

    Parameters
    ----------
    num_hospitals : int
        Virtual hospitals in the run.
    verbose : bool
        Let Ray log to the terminal.

    Returns
    -------
    dict
        ``backend_config`` for ``run_simulation``.

    """
    cpus = max(1, min(num_hospitals, os.cpu_count() or 1))
    return {
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        "init_args": {
            "num_cpus": cpus,
            "num_gpus": 0,
            "logging_level": logging.INFO if verbose else logging.ERROR,
            "log_to_driver": verbose,
        },
    }


@dataclass(frozen=True)
class PreparedSite:
    """One simulated hospital's prepared dataset and the key that opens it."""

    hospital: str
    data: Path
    key_file: Path


def prepare_sites(
    work_dir: Path, hospitals: Sequence[str] = HOSPITALS, *, seed: int = 0
) -> list[PreparedSite]:
    """Run each hospital's data path, as its data steward would.

    For each hospital: ``keygen``, a raw export with synthetic identifiers
    on its real rows (``demo-export``), ``prepare`` (de-identify, scan,
    encrypt), then the raw export is deleted. Only the encrypted dataset
    and the key remain, in ``work_dir/HOSPITAL/`` (mode 0700).

    Parameters
    ----------
    work_dir : Path
        An existing private directory.
    hospitals : sequence of str
        Hospitals of the embedded federation.
    seed : int
        Seed of the synthetic identifiers.

    Returns
    -------
    list of PreparedSite
        One per hospital, in order.

    """
    sites = []
    for hospital in hospitals:
        site = work_dir / hospital
        site.mkdir(mode=0o700)
        key = generate_key_file(site / "site.key")
        raw = site / "raw-export.csv"
        write_raw_export(hospital_raw_export(hospital, seed=seed), raw)
        try:
            prepare_export(raw, site / "site.hfd", schema=FED_HEART_RAW_SCHEMA, key=key)
        finally:
            raw.unlink()
        sites.append(PreparedSite(hospital, site / "site.hfd", site / "site.key"))
    return sites


def heart_nodes(
    sites: Sequence[PreparedSite],
    backend: str = "keras",
    *,
    privacy: PrivacySettings | None = None,
    state_dir: Path | None = None,
) -> list[NodeSettings]:
    """Node settings of the simulated hospitals.

    Parameters
    ----------
    sites : sequence of PreparedSite
        Each hospital's prepared dataset and key.
    backend : str
        One of :data:`SIM_BACKENDS`; ``mixed`` puts the first half of the
        hospitals on Keras and the rest on PyTorch.
    privacy : PrivacySettings, optional
        The same DP budget at every hospital; None is non-private.
    state_dir : Path, optional
        Parent of each hospital's state directory (needed with ``privacy``).

    Returns
    -------
    list of NodeSettings
        One per hospital.

    """
    if backend not in SIM_BACKENDS:
        raise ConfigError(
            f"unknown backend {backend!r}; allowed: {', '.join(SIM_BACKENDS)}"
        )
    half = len(sites) // 2
    return [
        NodeSettings(
            hospital=site.hospital,
            data=site.data,
            key_file=site.key_file,
            backend=("keras" if i < half else "torch")
            if backend == "mixed"
            else backend,
            privacy=privacy,
            state_dir=None if state_dir is None else state_dir / site.hospital,
        )
        for i, site in enumerate(sites)
    ]


def run_federated(
    config: RunConfig,
    *,
    nodes: Sequence[NodeSettings],
    observer: RoundObserver | None = None,
    verbose: bool = False,
) -> RunResult:
    """Run the federation in simulation; return the finished run.

    Parameters
    ----------
    config : RunConfig
        The run (strategy, rounds, seed, output directory, ...).
    nodes : sequence of NodeSettings
        One virtual hospital each (see :func:`prepare_sites` and
        :func:`heart_nodes`).
    observer : RoundObserver, optional
        Told about each finished round.
    verbose : bool
        Show Flower's and Ray's logs.

    Raises
    ------
    DataError
        If a hospital's data cannot be loaded (checked before starting).
    RoundFailedError
        If a round gets fewer than ``config.min_hospitals`` results.

    """
    if config.min_hospitals > len(nodes):
        raise ConfigError(
            f"min-hospitals is {config.min_hospitals} but the simulation has "
            f"only {len(nodes)} hospitals"
        )
    results: list[RunResult] = []
    server_app = make_server_app(config, observer, on_result=results.append)
    client_app = make_client_app(settings_by_partition(nodes))
    # Silence Ray's notice about GPU visibility: these runs use no GPU.
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    run_simulation = flower_run_simulation()
    # Failures reach the user as one RoundFailedError; Flower's own error logs
    # (with worker tracebacks) only with --verbose.
    flwr_logger = logging.getLogger("flwr")
    level = flwr_logger.level
    flwr_logger.setLevel(logging.INFO if verbose else logging.CRITICAL)
    try:
        run_simulation(
            server_app=server_app,
            client_app=client_app,
            num_supernodes=len(nodes),
            backend_config=backend_config(len(nodes), verbose=verbose),
            verbose_logging=verbose,
        )
    finally:
        flwr_logger.setLevel(level)
    if not results:
        raise HospfedError(
            "the simulation ended without a result; rerun with --verbose to see "
            "Flower's and Ray's logs"
        )
    return results[0]


def run_pooled(
    config: RunConfig,
    *,
    epochs: int = POOLED_EPOCHS,
    observer: RoundObserver | None = None,
) -> RunResult:
    """Train centrally on the pooled training data (the reference).

    Each epoch is recorded as a round, evaluated on every hospital's test
    set. Uses Adam (learning rate 0.001, batch size from ``config``), the
    same model spec and initial weights as the federated run.

    Parameters
    ----------
    config : RunConfig
        Supplies model, seed, batch size and output directory.
    epochs : int
        Passes over the pooled training data.
    observer : RoundObserver, optional
        Told about each epoch.

    Returns
    -------
    RunResult
        Per-epoch history and final weights.

    """
    from hospfed.client.backends import evaluate, get_backend

    start = time.perf_counter()
    pooled, parts = load_pooled(), [load_hospital(h) for h in HOSPITALS]
    backend = get_backend("keras", config.model)
    backend.set_weights(initial_weights(config.model, config.seed))
    steps = -(-len(pooled.y_train) // config.train.batch_size)
    history = RunHistory()
    for epoch in range(1, epochs + 1):
        plan = TrainPlan(
            learning_rate=POOLED_LEARNING_RATE,
            local_steps=steps,
            batch_size=config.train.batch_size,
            optimizer="adam",
            seed=config.seed * 1_000_003 + epoch,
            reset_optimizer=epoch == 1,
        )
        loss = backend.train(pooled.x_train, pooled.y_train, plan)
        record = history.round(epoch)
        record.add_training("pooled", loss, len(pooled.y_train))
        for part in parts:
            record.add_evaluation(
                part.hospital, evaluate(backend, part.x_test, part.y_test)
            )
        if observer is not None:
            observer.on_round_end(record, epochs)
    result = RunResult(history, backend.get_weights(), time.perf_counter() - start)
    if config.out_dir is not None:
        run = describe_run(replace(config, num_rounds=epochs, strategy="pooled"))
        run |= {
            "seconds": result.seconds,
            "optimizer": "adam",
            "learning_rate": POOLED_LEARNING_RATE,
            "title": "Fed-Heart-Disease, pooled reference",
        }
        write_results(config.out_dir, history=history, weights=result.weights, run=run)
    return result
