"""The hospital side of hospfed.

The Flower ClientApp a hospital runs next to its data (``app``: a warm model
per process, local training and local evaluation, whitelisted metrics only),
its node settings and prepared data (``data``), ``prepare`` (raw export to
encrypted dataset), the ``hospfed-client`` command (``cli``), and the
subpackages ``deid`` (de-identification), ``vault`` (keys and the ``.hfd``
format), ``privacy`` (DP settings, accounting, the ledger) and ``backends``
(Keras and PyTorch). Callers import from those; this package re-exports
nothing, so that importing it stays cheap (no TensorFlow, no torch).
"""

import hospfed.common  # noqa: F401  (turns telemetry off before Flower loads)

__all__: list[str] = []  # import from the modules; nothing here
