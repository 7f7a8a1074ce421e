"""The data steward's budget and audit commands, as run from the shell."""

import json

import numpy as np
import pytest

from hospfed.client.audit import append_audit_entry
from hospfed.client.cli import main
from hospfed.client.privacy import LEDGER_FILE, load_ledger
from hospfed.client.vault import generate_key_file


def run(capsys, *argv):
    with pytest.raises(SystemExit) as stop:
        main(list(argv))
    out, err = capsys.readouterr()
    return stop.value.code, out, err


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "site.key"
    generate_key_file(path)
    return path


def test_init_raise_and_show_with_the_hospitals_key(tmp_path, key, capsys):
    state = tmp_path / "state"
    code, out, _ = run(
        capsys,
        "budget",
        "init",
        "--state-dir",
        str(state),
        "--epsilon",
        "1",
        "--key",
        str(key),
    )
    assert code == 0 and "lifetime budget epsilon 1" in out
    code, _, err = run(
        capsys,
        "budget",
        "init",
        "--state-dir",
        str(state),
        "--epsilon",
        "9",
        "--key",
        str(key),
    )
    assert code == 2 and "already exists" in err
    code, out, _ = run(
        capsys,
        "budget",
        "raise",
        "--state-dir",
        str(state),
        "--epsilon",
        "2",
        "--reason",
        "board approval",
        "--key",
        str(key),
    )
    assert code == 0 and "from epsilon 1 to 2" in out
    code, out, _ = run(
        capsys, "budget", "show", "--state-dir", str(state), "--key", str(key)
    )
    assert code == 0 and "MAC verified" in out and "board approval" in out
    assert load_ledger(state).epsilon_budget == 2.0


def test_an_edited_ledger_is_refused_by_show_with_the_key(tmp_path, key, capsys):
    state = tmp_path / "state"
    run(
        capsys,
        "budget",
        "init",
        "--state-dir",
        str(state),
        "--epsilon",
        "1",
        "--key",
        str(key),
    )
    document = json.loads((state / LEDGER_FILE).read_text())
    document["epsilon-budget"] = 100.0
    (state / LEDGER_FILE).write_text(json.dumps(document))
    code, _, err = run(
        capsys, "budget", "show", "--state-dir", str(state), "--key", str(key)
    )
    assert code == 2 and "edited outside hospfed" in err
    code, _, err = run(
        capsys,
        "budget",
        "raise",
        "--state-dir",
        str(state),
        "--epsilon",
        "200",
        "--reason",
        "x",
        "--key",
        str(key),
    )
    assert code == 2 and "edited outside hospfed" in err


def test_raise_without_a_key_is_refused(tmp_path, capsys):
    code, _, err = run(
        capsys,
        "budget",
        "raise",
        "--state-dir",
        str(tmp_path),
        "--epsilon",
        "2",
        "--reason",
        "x",
    )
    assert code == 2 and "exactly one of --key FILE" in err


def test_audit_verify_and_show(tmp_path, capsys):
    for server_round in (1, 2, 3):
        append_audit_entry(
            tmp_path,
            run="42",
            server_round=server_round,
            message_type="train",
            arrays=[np.zeros(3, np.float32)],
            metrics={"hospital": "va"},
            num_examples=9,
            epsilon=0.5,
        )
    code, out, _ = run(capsys, "audit", "verify", "--state-dir", str(tmp_path))
    assert code == 0 and "intact: 3 messages" in out
    code, out, _ = run(capsys, "audit", "show", "--state-dir", str(tmp_path))
    assert code == 0 and "42" in out and "0.5000" in out
    lines = (tmp_path / "audit.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "audit.jsonl").write_text(lines[0] + lines[2])
    code, _, err = run(capsys, "audit", "verify", "--state-dir", str(tmp_path))
    assert code == 2 and "line 2: does not follow" in err and "not intact" in err
