"""What the hospital side and the coordinator side of hospfed both need.

The dataset schema contract, the model spec and its training backends,
configuration parsing, protocol keys, metrics and errors. Nothing here imports
``hospfed.client``, ``hospfed.server`` or ``hospfed.simulations``, and nothing
here imports TensorFlow or torch at module import time.

Importing hospfed turns off Flower's telemetry and Ray's usage statistics
(both would send data off the machine) unless the operator has set those
variables explicitly: a hospital's processes talk to its federation only.
"""

import os as _os

_os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
_os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
