"""The Fed-Heart-Disease scenario: four real hospitals on one machine.

``prepare_sites`` runs each hospital's data path first, as its data steward
would (key, raw export with synthetic identifiers, de-identification,
encryption), in the run's private workspace; ``run_federated`` then runs the
same ServerApp and ClientApp a deployment runs, with Flower's simulation
runtime (one virtual SuperNode per hospital, two worker processes on a
2-core machine, each keeping its model warm), every hospital reading only
its encrypted dataset; it can stop between rounds on request and resume a
checkpoint. ``run_pooled`` trains the same model centrally on the pooled
training data (FLamby's reference: Adam, learning rate 0.001, batch 4, 50
epochs) and scores it on each hospital's own test set.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hospfed.client.app import make_client_app, settings_by_partition
from hospfed.client.backends import BACKENDS
from hospfed.client.data import NodeSettings
from hospfed.client.prepare import prepare_export
from hospfed.client.privacy import PrivacySettings
from hospfed.client.vault import generate_key_file, load_key
from hospfed.common.datasets.heart import HOSPITALS, load_hospital, load_pooled
from hospfed.common.datasets.heart_export import hospital_raw_export, write_raw_export
from hospfed.common.datasets.heart_schema import FED_HEART_RAW_SCHEMA
from hospfed.common.errors import ConfigError, HospfedError
from hospfed.common.model import initial_weights
from hospfed.common.training import HospitalData, TrainPlan, pool
from hospfed.server.app import RunResult, make_server_app
from hospfed.server.checkpoint import Checkpoint
from hospfed.server.config import RunConfig
from hospfed.server.history import RoundObserver, RunHistory
from hospfed.server.results import describe_run, versions, write_results
from hospfed.server.stop import RunInterruptedError, StopRequest
from hospfed.simulations.flower import flower_run_simulation, start_ray, stop_ray
from hospfed.simulations.workspace import Workspace

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
    workspace: Workspace,
    hospitals: Sequence[str] = HOSPITALS,
    *,
    seed: int = 0,
    state_dir: Path | None = None,
) -> list[PreparedSite]:
    """Run each hospital's data path, as its data steward would.

    For each hospital: ``keygen``, a raw export with synthetic identifiers
    on its real rows (``demo-export``), ``prepare`` (de-identify, scan,
    encrypt), then the raw export is deleted. Only the encrypted dataset
    and the key remain, in separate private directories.

    Parameters
    ----------
    workspace : Workspace
        The run's private workspace: the datasets, and the keys when
        ``state_dir`` is None.
    hospitals : sequence of str
        Hospitals of the embedded federation.
    seed : int
        Seed of the synthetic identifiers.
    state_dir : Path, optional
        Where the hospitals persist across runs (``--state-dir``): each
        hospital's key is kept in ``STATE_DIR/HOSPITAL/key/`` (0700) and used
        again by later runs, as a real hospital keeps its key; its privacy
        ledger, authenticated with that key, lives in ``STATE_DIR/HOSPITAL``.

    Returns
    -------
    list of PreparedSite
        One per hospital, in order.

    """
    sites = []
    for hospital in hospitals:
        data = workspace.data_file(hospital)
        if state_dir is None:
            key_file = workspace.key_file(hospital)
            key = generate_key_file(key_file)
        else:
            key_file = _private_dir(state_dir / hospital / "key") / "site.key"
            key = (
                load_key(key_file) if key_file.exists() else generate_key_file(key_file)
            )
        raw = data.parent / "raw-export.csv"
        write_raw_export(hospital_raw_export(hospital, seed=seed), raw)
        try:
            prepare_export(raw, data, schema=FED_HEART_RAW_SCHEMA, key=key)
        finally:
            raw.unlink()
        sites.append(PreparedSite(hospital, data, key_file))
    return sites


def _private_dir(path: Path) -> Path:
    """``path`` and its missing parents, created mode 0700."""
    for directory in reversed([path, *path.parents]):
        if not directory.exists():
            directory.mkdir(mode=0o700)
    return path


def hospital_backends(hospitals: Sequence[str], backend: str) -> dict[str, str]:
    """Each hospital's training backend.

    Parameters
    ----------
    hospitals : sequence of str
        The hospitals, in order.
    backend : str
        One of :data:`SIM_BACKENDS`; ``mixed`` puts the first half of the
        hospitals on Keras and the rest on PyTorch.

    Raises
    ------
    ConfigError
        For an unknown backend.

    """
    if backend not in SIM_BACKENDS:
        raise ConfigError(
            f"unknown backend {backend!r}; allowed: {', '.join(SIM_BACKENDS)}"
        )
    half = len(hospitals) // 2
    return {
        h: (("keras" if i < half else "torch") if backend == "mixed" else backend)
        for i, h in enumerate(hospitals)
    }


def heart_nodes(
    sites: Sequence[PreparedSite],
    backend: str = "keras",
    *,
    privacy: PrivacySettings | None = None,
    state_dir: Path | None = None,
    input_sums: bool = False,
) -> list[NodeSettings]:
    """Node settings of the simulated hospitals.

    Parameters
    ----------
    sites : sequence of PreparedSite
        Each hospital's prepared dataset and key.
    backend : str
        One of :data:`SIM_BACKENDS` (see :func:`hospital_backends`).
    privacy : PrivacySettings, optional
        The same DP budget at every hospital; None is non-private.
    state_dir : Path, optional
        Parent of each hospital's state directory (needed with ``privacy``).
    input_sums : bool
        Let every hospital answer the sums query of a task that standardises
        by federation (the simulation's user is the whole federation).

    Returns
    -------
    list of NodeSettings
        One per hospital.

    """
    backends = hospital_backends([site.hospital for site in sites], backend)
    return [
        NodeSettings(
            hospital=site.hospital,
            data=site.data,
            key_file=site.key_file,
            backend=backends[site.hospital],
            privacy=privacy,
            state_dir=None if state_dir is None else state_dir / site.hospital,
            input_sums=input_sums,
        )
        for site in sites
    ]


def run_federated(
    config: RunConfig,
    *,
    nodes: Sequence[NodeSettings],
    observer: RoundObserver | None = None,
    verbose: bool = False,
    stop: StopRequest | None = None,
    resume: Checkpoint | None = None,
    settings: Mapping[str, Any] | None = None,
    on_stage: Callable[[int, str], None] | None = None,
) -> RunResult:
    """Run the federation in simulation; return the run however it ended.

    Ray is started here (before Flower would, see
    :func:`~hospfed.simulations.flower.start_ray`) and shut down on every
    way out.

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
    stop : StopRequest, optional
        When set, the run stops before its next round.
    resume : Checkpoint, optional
        Continue this checkpoint from its last completed round.
    settings : Mapping, optional
        The simulation's own settings (recorded, and part of the config
        hash).
    on_stage : callable, optional
        Told each SecAgg+ stage as a round enters it (round, stage name).

    Returns
    -------
    RunResult
        With ``error`` set (not raised) for a run that was interrupted
        (:class:`~hospfed.server.stop.RunInterruptedError`) or failed
        (:class:`~hospfed.common.errors.RoundFailedError`).

    Raises
    ------
    ConfigError
        If ``config.min_hospitals`` exceeds the hospitals.
    HospfedError
        If the simulation ended without a result.

    """
    if config.min_hospitals > len(nodes):
        raise ConfigError(
            f"min-hospitals is {config.min_hospitals} but the simulation has "
            f"only {len(nodes)} hospitals"
        )
    results: list[RunResult] = []
    server_app = make_server_app(
        config,
        observer,
        on_result=results.append,
        stop=stop,
        resume=resume,
        settings=settings,
        on_stage=on_stage,
    )
    client_app = make_client_app(settings_by_partition(nodes))
    # Silence Ray's notice about GPU visibility: these runs use no GPU.
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    run_simulation = flower_run_simulation()
    # Failures reach the user as one RoundFailedError; Flower's own error logs
    # (with worker tracebacks) only with --verbose.
    flwr_logger = logging.getLogger("flwr")
    level = flwr_logger.level
    flwr_logger.setLevel(logging.INFO if verbose else logging.CRITICAL)
    resources = backend_config(len(nodes), verbose=verbose)
    done = 0 if resume is None else resume.completed_rounds
    try:
        _check_stop(stop, done, config.num_rounds)  # asked while preparing
        start_ray(resources["init_args"])
        _check_stop(stop, done, config.num_rounds)  # asked while Ray started
        run_simulation(
            server_app=server_app,
            client_app=client_app,
            num_supernodes=len(nodes),
            backend_config=resources,
            verbose_logging=verbose,
        )
    finally:
        flwr_logger.setLevel(level)
        stop_ray()
    if not results:
        raise HospfedError(
            "the simulation ended without a result; rerun with --verbose to see "
            "Flower's and Ray's logs"
        )
    return results[0]


def _check_stop(stop: StopRequest | None, done: int, num_rounds: int) -> None:
    if stop is not None and stop.is_set():
        raise RunInterruptedError(
            completed_rounds=done,
            num_rounds=num_rounds,
            reason=stop.reason or "stop requested",
            exit_code=stop.exit_code,
        )


def run_pooled(
    config: RunConfig,
    *,
    epochs: int = POOLED_EPOCHS,
    observer: RoundObserver | None = None,
    stop: StopRequest | None = None,
    parts: Sequence[HospitalData] | None = None,
    title: str = "Fed-Heart-Disease, pooled reference",
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
    stop : StopRequest, optional
        When set, training stops after the current epoch; the results of
        the completed epochs are written, marked ``interrupted``.
    parts : sequence of HospitalData, optional
        Every hospital's model inputs (default: Fed-Heart-Disease's four);
        the reference trains on their training sets together.
    title : str
        Recorded in the results.

    Returns
    -------
    RunResult
        Per-epoch history and final weights (``error`` set when stopped).

    """
    from hospfed.client.backends import evaluate, get_backend

    start = time.perf_counter()
    if parts is None:
        pooled, parts = load_pooled(), [load_hospital(h) for h in HOSPITALS]
    else:
        pooled = pool(parts)
    backend = get_backend("keras", config.model)
    backend.set_weights(initial_weights(config.model, config.seed))
    steps = -(-len(pooled.y_train) // config.train.batch_size)
    history = RunHistory()
    error: RunInterruptedError | None = None
    for epoch in range(1, epochs + 1):
        if stop is not None and stop.is_set():
            error = RunInterruptedError(
                completed_rounds=epoch - 1,
                num_rounds=epochs,
                reason=stop.reason or "stop requested",
                exit_code=stop.exit_code,
            )
            break
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
    result = RunResult(
        history,
        backend.get_weights(),
        time.perf_counter() - start,
        status="complete" if error is None else "interrupted",
        error=error,
        completed_rounds=len(history.rounds),
    )
    if config.out_dir is not None and history.rounds:
        run = describe_run(replace(config, num_rounds=epochs, strategy="pooled"))
        run |= {
            "seconds": result.seconds,
            "optimizer": "adam",
            "learning_rate": POOLED_LEARNING_RATE,
            "versions": versions(),
            "title": title,
        }
        write_results(
            config.out_dir,
            history=history,
            weights=result.weights,
            run=run,
            status=result.status,
            reason=None if error is None else str(error),
        )
    return result
