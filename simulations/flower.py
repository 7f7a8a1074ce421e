"""Import Flower's simulation runtime without paying for TensorFlow.

``flwr.simulation`` imports TensorFlow (about 5 s and 600 MB) only to offer
optional GPU memory growth. The coordinator never uses TensorFlow, so the
import is done with TensorFlow hidden; hospitals that use the Keras backend
import it in their own worker processes. Flower has no switch for this,
hence the small import guard.

:func:`start_ray` starts Ray before Flower would, so that ``hospfed-sim``
keeps handling SIGTERM itself; :func:`stop_ray` shuts it down.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Mapping
from typing import Any


def flower_run_simulation() -> Callable[..., Any]:
    """Import ``flwr.simulation.run_simulation`` without TensorFlow.

    Returns
    -------
    callable
        Flower's ``run_simulation``.

    """
    if "flwr.simulation" in sys.modules or "tensorflow" in sys.modules:
        from flwr.simulation import run_simulation

        return run_simulation
    sys.modules["tensorflow"] = None  # type: ignore[assignment]
    try:
        from flwr.simulation import run_simulation
    finally:
        del sys.modules["tensorflow"]
    return run_simulation


def start_ray(init_args: Mapping[str, Any]) -> None:
    """Start Ray as Flower's Ray backend would, leaving SIGTERM to hospfed.

    Flower's backend starts Ray only if it is not running; starting it here
    first, with the same arguments (``include_dashboard=False``, this
    interpreter's ``sys.path`` as the workers' ``PYTHONPATH``), lets
    ``hospfed-sim`` keep its own SIGINT and SIGTERM handlers: ``ray.init``
    installs SIGTERM handlers that end the process at once (losing the
    round in progress and the results), which are kept out here; and Ray's
    services start in process groups of their own (see
    :func:`_own_process_group`).

    Parameters
    ----------
    init_args : Mapping
        Keyword arguments of ``ray.init`` (``backend_config["init_args"]``).

    """
    import ray

    if ray.is_initialized():
        return
    pythonpath = os.pathsep.join(sys.path)
    if os.environ.get("PYTHONPATH"):
        pythonpath = f"{pythonpath}{os.pathsep}{os.environ['PYTHONPATH']}"
    os.environ["PYTHONPATH"] = pythonpath
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    private: Any = getattr(ray, "_private", None)
    utils: Any = getattr(private, "utils", None)
    services: Any = getattr(private, "services", None)
    set_handler = getattr(utils, "set_sigterm_handler", None)
    popen = getattr(services, "ConsolePopen", None)
    if set_handler is not None:
        utils.set_sigterm_handler = lambda handler: None
    if popen is not None and sys.platform.startswith("linux"):
        services.ConsolePopen = _own_process_group(popen)
    try:
        ray.init(
            runtime_env={"env_vars": {"PYTHONPATH": pythonpath}},
            **({"include_dashboard": False} | dict(init_args)),
        )
    finally:
        if set_handler is not None:
            utils.set_sigterm_handler = set_handler
        if popen is not None:
            services.ConsolePopen = popen
        # Ray's core worker installs C-level failure handlers (SIGTERM among
        # them: print, then abort) behind Python's back; put ours back.
        for sig, handler in handlers.items():
            if handler is not None:
                signal.signal(sig, handler)


def _own_process_group(popen: Any) -> Any:
    """Ray's process class, starting each Ray service in a process group of its own.

    A signal sent to the command's process group (Ctrl-C at a terminal, or
    ``kill -TERM -PGID`` from a supervisor) then reaches only the driver,
    which stops after the current round and shuts Ray down itself, instead
    of killing Ray's services (and the round in progress) under it. Ray
    does the same on Windows; on Linux its services still die with the
    driver (Ray's kernel fate-sharing), and the watchdog ends what is left.
    """

    class OwnGroupPopen(popen):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("process_group", 0)
            super().__init__(*args, **kwargs)

    return OwnGroupPopen


def stop_ray() -> None:
    """Shut Ray down if it runs (Flower's backend normally has already)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
