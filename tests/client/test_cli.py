"""``hospfed-client``: the hospital's commands."""

import pytest

from hospfed.client.cli import main
from hospfed.client.ledger import LEDGER_FILE, PrivacyLedger
from hospfed.common.privacy import DpMechanism


def run(capsys, *argv):
    with pytest.raises(SystemExit) as stop:
        main(list(argv))
    out, err = capsys.readouterr()
    return stop.value.code, out, err


def test_budget_prints_spent_and_remaining(tmp_path, capsys):
    ledger = PrivacyLedger.open(tmp_path, dataset="d", delta=1e-3, epsilon_budget=3.0)
    for server_round in (1, 2):
        ledger.record(
            DpMechanism(1.2, 0.02, 100), run="7", server_round=server_round, clip_norm=1
        )
    code, out, _ = run(capsys, "budget", "--state-dir", str(tmp_path))
    assert code == 0
    spent = ledger.spent()
    assert f"{spent:.4f}" in out and f"{3.0 - spent:.4f}" in out
    assert "DP rounds recorded" in out and "7 round 2" in out


def test_budget_without_a_ledger_is_a_clear_error(tmp_path, capsys):
    code, _, err = run(capsys, "budget", "--state-dir", str(tmp_path))
    assert code == 2
    assert err.strip() == (
        f"hospfed-client: error: no privacy ledger in {tmp_path}: the client has "
        "not trained with DP there yet (check --state-dir)"
    )


def test_budget_with_a_corrupt_ledger_never_reports_zero(tmp_path, capsys):
    (tmp_path / LEDGER_FILE).write_text("{")
    code, out, err = run(capsys, "budget", "--state-dir", str(tmp_path))
    assert code == 2 and "cannot be read" in err and "restore it from backup" in err
    assert "epsilon spent" not in out
