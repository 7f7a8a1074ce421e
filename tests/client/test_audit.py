"""The hospital's audit log: hash-chained, append-only, verifiable offline."""

import json
import subprocess
import sys

import numpy as np
import pytest

from hospfed.client.audit import (
    AUDIT_FILE,
    append_audit_entry,
    summarise_audit_log,
    verify_audit_log,
)
from hospfed.common.errors import DataError

WEIGHTS = [np.ones((3, 1), np.float32), np.zeros(1, np.float32)]


def record(state_dir, server_round, run="r1", epsilon=0.1):
    return append_audit_entry(
        state_dir,
        run=run,
        server_round=server_round,
        message_type="train",
        arrays=WEIGHTS,
        metrics={"hospital": "va", "epsilon-spent": epsilon},
        num_examples=85,
        epsilon=epsilon,
    )


def lines(state_dir):
    return (state_dir / AUDIT_FILE).read_text().splitlines(keepends=True)


@pytest.fixture
def logged(tmp_path):
    for server_round in (1, 2, 3, 4):
        record(tmp_path, server_round, epsilon=0.1 * server_round)
    return tmp_path


def test_an_intact_log_verifies_and_records_what_was_sent(logged):
    assert verify_audit_log(logged) == []
    first = json.loads(lines(logged)[0])
    assert first["arrays"][0]["shape"] == [3, 1] and first["arrays"][0]["bytes"] == 12
    assert first["metrics"] == {"epsilon-spent": 0.1, "hospital": "va"}
    [run] = summarise_audit_log(logged)
    assert run["messages"] == 4 and run["rounds"] == 4
    assert run["epsilon"] == pytest.approx(0.4) and run["bytes"] == 4 * 16


def rewrite(state_dir, new_lines):
    (state_dir / AUDIT_FILE).write_text("".join(new_lines))


def edited(entries):
    entry = json.loads(entries[1])
    entry["metrics"]["epsilon-spent"] = 0.0
    return [entries[0], json.dumps(entry, sort_keys=True) + "\n", *entries[2:]]


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (edited, "line 2: its content was edited"),
        (lambda e: [e[0], *e[2:]], "line 2: does not follow"),  # deleted
        (lambda e: [e[0], e[1], e[1], *e[2:]], "line 3: does not follow"),  # inserted
        (lambda e: [e[0], e[2], e[1], e[3]], "line 2: does not follow"),  # reordered
        (lambda e: e[:3], "entries were removed from the end"),  # cut short
        (lambda e: [e[0], "{not json\n", *e[2:]], "line 2: not a JSON object"),
    ],
)
def test_tampering_is_detected(logged, tamper, expected):
    rewrite(logged, tamper(lines(logged)))
    problems = [str(p) for p in verify_audit_log(logged)]
    assert any(expected in p for p in problems), problems


def test_a_broken_log_is_never_extended(logged):
    (logged / "audit.head.json").unlink()
    with pytest.raises(DataError, match="no audit.head.json"):
        record(logged, 5)


def test_verify_without_a_log_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no audit log"):
        verify_audit_log(tmp_path)


APPENDER = """
import sys
from pathlib import Path
import numpy as np
from hospfed.client.audit import append_audit_entry
for r in range(40):
    append_audit_entry(Path(sys.argv[1]), run=sys.argv[2], server_round=r,
        message_type="evaluate", arrays=[np.zeros(2, np.float32)],
        metrics={"hospital": "va"}, num_examples=1, epsilon=None)
"""


def test_two_processes_appending_keep_one_valid_chain(tmp_path):
    children = [
        subprocess.Popen([sys.executable, "-c", APPENDER, str(tmp_path), run])
        for run in ("a", "b")
    ]
    assert [child.wait(timeout=120) for child in children] == [0, 0]
    assert verify_audit_log(tmp_path) == []
    assert len(lines(tmp_path)) == 80
