"""What the hospital side and the coordinator side of hospfed both need.

Callers import from the modules and subpackages, which say what they offer
in their own ``__all__``: ``protocol`` (message keys), ``model`` (the model
spec), ``training`` (the train plan), ``metrics``, ``config`` (typed config
readers), ``errors``, ``files`` (atomic, durable writes), ``cli``;
``schema`` (the dataset contract and schema files) and ``datasets`` (the
built-in Fed-Heart-Disease federation). This package itself re-exports
nothing, so that importing it stays cheap. Nothing here imports
``hospfed.client``, ``hospfed.server`` or ``hospfed.simulations``, and
nothing here imports TensorFlow or torch.

Importing hospfed turns off Flower's telemetry and Ray's usage statistics
(both would send data off the machine) unless the operator has set those
variables explicitly: a hospital's processes talk to its federation only.
"""

import os as _os

_os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
_os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

__all__: list[str] = []
