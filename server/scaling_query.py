"""Before round 1: ask every hospital for sums over its training inputs.

For a task that standardises by federation (:mod:`hospfed.common.scaling`)
the coordinator sends each connected hospital Flower's legacy
``get_properties`` message carrying the run's schema and task; each answers
with the count, per-input sums and sums of squares of the training inputs
the task builds (nothing else passes the hospital's outgoing policy). The
combined statistics then travel with every round's instructions.

Every hospital queried must answer (statistics of a subset would scale the
others' inputs with numbers their data never entered). Sums are combined
in the order of the hospitals' names, so the same data always gives
bit-for-bit the same statistics. A resumed run reuses the statistics its
checkpoint recorded rather than asking again.
"""

from __future__ import annotations

import time
from logging import INFO

from flwr.app import Message
from flwr.common import GetPropertiesIns, Scalar, log
from flwr.common.constant import MessageTypeLegacy
from flwr.compat.common import recorddict_compat as compat
from flwr.serverapp import Grid

from hospfed.common.errors import RoundFailedError
from hospfed.common.protocol import Key
from hospfed.common.scaling import InputSums, Scaling, federation_scaling
from hospfed.common.schema import dumps_schema
from hospfed.common.task import dumps_task
from hospfed.server.config import RunConfig
from hospfed.server.replies import failure_reason

__all__ = ["PHASE", "query_scaling"]

PHASE = "input sums for federation-wide standardisation"
_POLL_SECONDS = 1.0


def query_scaling(
    grid: Grid,
    config: RunConfig,
    *,
    first_round: int = 1,
    wait_seconds: float = 300.0,
    timeout: float | None = 300.0,
) -> tuple[Scaling, list[str]]:
    """Ask every connected hospital for its input sums; combine them.

    Parameters
    ----------
    grid : Grid
        The ServerApp's grid.
    config : RunConfig
        The run (its schema, task and minimum of hospitals).
    first_round : int
        The round the answers prepare (named in a failure).
    wait_seconds : float
        How long to wait for ``config.min_hospitals`` hospitals to connect.
    timeout : float or None
        How long to wait for the answers.

    Returns
    -------
    Scaling
        The federation's mean and std per input.
    list of str
        The hospitals whose sums they combine.

    Raises
    ------
    RoundFailedError
        If any hospital queried did not answer, answered with an error (e.g.
        one training with DP, or not opted in) or under another's name, or
        fewer than ``config.min_hospitals`` are connected; naming each.

    """
    nodes = _connected(grid, config.min_hospitals, wait_seconds)
    instructions: dict[str, Scalar] = {
        Key.SCHEMA: dumps_schema(config.data_schema),
        Key.TASK: dumps_task(config.task),
        Key.TASK_FINGERPRINT: config.task.fingerprint(),
    }
    content = compat.getpropertiesins_to_recorddict(GetPropertiesIns(instructions))
    messages = [
        Message(
            content=content,
            dst_node_id=node,
            message_type=MessageTypeLegacy.GET_PROPERTIES,
            group_id="0",
        )
        for node in nodes
    ]
    answers: dict[str, InputSums] = {}
    failures: list[str] = []
    replies = list(grid.send_and_receive(messages, timeout=timeout))
    if len(replies) < len(messages):
        failures.append(
            f"{len(messages) - len(replies)} of {len(messages)} hospitals did not "
            f"answer within {timeout} s"
        )
    for reply in replies:
        if reply.has_error():
            failures.append(failure_reason(Exception(reply.error)))
            continue
        properties = compat.recorddict_to_getpropertiesres(reply.content).properties
        hospital = str(
            properties.get(Key.HOSPITAL, f"node {reply.metadata.src_node_id}")
        )
        if hospital in answers:
            failures.append(f"two hospitals answered as {hospital!r}")
            continue
        try:
            answers[hospital] = InputSums.from_json(
                str(properties.get(Key.INPUT_SUMS, "")), hospital
            )
        except Exception as exc:  # a malformed answer is its sender's failure
            failures.append(str(exc))
    if failures or len(answers) < config.min_hospitals:
        # Every hospital queried must answer: statistics of a subset would
        # scale the others' inputs with numbers their data never entered.
        raise RoundFailedError(
            server_round=first_round,
            phase=PHASE,
            received=len(answers),
            required=max(config.min_hospitals, len(messages)),
            failures=failures,
        )
    names = sorted(answers)
    log(INFO, "federation-wide standardisation: sums of %s", ", ".join(names))
    return federation_scaling(answers[name] for name in names), names


def _connected(grid: Grid, minimum: int, wait_seconds: float) -> list[int]:
    deadline = time.monotonic() + wait_seconds
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= minimum or time.monotonic() >= deadline:
            return nodes
        time.sleep(_POLL_SECONDS)
