"""Training backends: one protocol, Keras (our DP-SGD) and PyTorch (Opacus).

:class:`TrainingBackend` is what the hospital's client calls; :func:`get_backend`
builds one (kept warm per process) by name. The Keras backend imports
TensorFlow and the PyTorch backend imports torch only when they are built,
so a PyTorch hospital never pays for TensorFlow.
"""

from hospfed.client.backends.base import (
    BACKENDS,
    TrainingBackend,
    evaluate,
    get_backend,
)

__all__ = ["BACKENDS", "TrainingBackend", "evaluate", "get_backend"]
