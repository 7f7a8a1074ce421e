"""Import Flower's simulation runtime without paying for TensorFlow.

``flwr.simulation`` imports TensorFlow (about 5 s and 600 MB) only to offer
optional GPU memory growth. The coordinator never uses TensorFlow, so the
import is done with TensorFlow hidden; hospitals that use the Keras backend
import it in their own worker processes. Flower has no switch for this,
hence the small import guard.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
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
