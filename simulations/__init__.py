"""Many virtual hospitals on one machine: scenarios and ``hospfed-sim``.

The Fed-Heart-Disease scenario runs the real four-hospital federation with
Flower's simulation runtime (the same ServerApp and ClientApp a deployment
runs), or trains the same model on the pooled data as the reference. A run
keeps its hospitals' keys and data in a private workspace that is removed
on every way out (``workspace``, ``watchdog``, ``processes``), stops
cleanly on SIGINT or SIGTERM (``signals``), refuses flags that would have
no effect and resumes interrupted runs (``options``).
"""

import hospfed.common  # noqa: F401  (turns telemetry off before Flower loads)

__all__: list[str] = []  # import from the modules; nothing here
