"""The coordinator side of hospfed.

The Flower ServerApp (one server path: Flower's legacy ``DefaultWorkflow``,
on which SecAgg+ is a config switch), the strategy factory, the round guard
that fails a run loudly when a round gets too few results (and stops it
between rounds on request), the run history and its results directory,
the checkpoint written after every round (``checkpoint``, ``recorder``) to
resume a run, and the ``hospfed-server`` command.
"""

import hospfed.common  # noqa: F401  (turns telemetry off before Flower loads)

__all__: list[str] = []  # import from the modules; nothing here
