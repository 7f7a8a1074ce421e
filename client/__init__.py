"""The hospital side of hospfed.

The Flower ClientApp a hospital runs next to its data (a warm model per
process, local training and local evaluation, whitelisted metrics only),
where the hospital's data comes from, and the ``hospfed-client`` command.
"""

import hospfed.common  # noqa: F401  (turns telemetry off before Flower loads)
