"""The privacy ledger survives restarts and never becomes empty by accident."""

import json
import stat

import pytest

from hospfed.client.privacy import (
    LEDGER_FILE,
    DpMechanism,
    PrivacyLedger,
    epsilon_spent,
    load_ledger,
)
from hospfed.common.errors import LedgerError, PrivacyBudgetError

ROUND = DpMechanism(noise_multiplier=1.5, sample_rate=0.02, steps=100)


def open_ledger(state_dir, dataset="data-a", budget=1.0):
    return PrivacyLedger.open(
        state_dir, dataset=dataset, delta=1e-3, epsilon_budget=budget
    )


def test_spending_survives_reopening(tmp_path):
    ledger = open_ledger(tmp_path)
    ledger.record(ROUND, run="r1", server_round=1, clip_norm=1.0)
    ledger.record(ROUND, run="r2", server_round=1, clip_norm=1.0)
    reopened = open_ledger(tmp_path)
    assert reopened.history == [ROUND, ROUND]
    assert reopened.spent() == pytest.approx(epsilon_spent([ROUND, ROUND], 1e-3))
    assert reopened.spent() > 0
    assert [e.run for e in reopened.entries] == ["r1", "r2"]


def test_ledger_file_is_private_json(tmp_path):
    open_ledger(tmp_path).record(ROUND, run="r", server_round=3, clip_norm=0.5)
    path = tmp_path / LEDGER_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document["entries"][0]["round"] == 3
    assert document["entries"][0]["noise-multiplier"] == 1.5


def test_a_round_over_budget_is_refused_and_not_recorded(tmp_path):
    ledger = open_ledger(tmp_path, budget=0.5)
    big = DpMechanism(noise_multiplier=0.7, sample_rate=0.1, steps=500)
    with pytest.raises(PrivacyBudgetError, match="over this hospital's budget of 0.5"):
        ledger.authorise(big, server_round=4)
    assert open_ledger(tmp_path).entries == []


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"format": "other"}'])
def test_a_corrupt_ledger_is_an_error_and_is_left_alone(tmp_path, content):
    path = tmp_path / LEDGER_FILE
    path.write_bytes(content)
    with pytest.raises(LedgerError):
        open_ledger(tmp_path)
    assert path.read_bytes() == content


def test_a_malformed_entry_is_an_error_not_an_empty_ledger(tmp_path):
    open_ledger(tmp_path).record(ROUND, run="r", server_round=1, clip_norm=1.0)
    path = tmp_path / LEDGER_FILE
    document = json.loads(path.read_text())
    del document["entries"][0]["steps"]
    path.write_text(json.dumps(document))
    with pytest.raises(LedgerError, match="malformed"):
        open_ledger(tmp_path)


def test_a_ledger_for_other_data_or_delta_is_refused(tmp_path):
    open_ledger(tmp_path).record(ROUND, run="r", server_round=1, clip_norm=1.0)
    with pytest.raises(LedgerError, match="belongs to other data"):
        open_ledger(tmp_path, dataset="data-b")
    with pytest.raises(LedgerError, match="delta"):
        PrivacyLedger.open(tmp_path, dataset="data-a", delta=1e-5, epsilon_budget=1)


def test_a_failed_write_keeps_the_previous_ledger(tmp_path, monkeypatch):
    ledger = open_ledger(tmp_path)
    ledger.record(ROUND, run="r", server_round=1, clip_norm=1.0)
    before = (tmp_path / LEDGER_FILE).read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("hospfed.client.privacy.ledger.atomic_write", broken)
    with pytest.raises(OSError, match="disk full"):
        ledger.record(ROUND, run="r", server_round=2, clip_norm=1.0)
    assert ledger.history == [ROUND]
    assert (tmp_path / LEDGER_FILE).read_bytes() == before


def test_reporting_needs_an_existing_ledger(tmp_path):
    with pytest.raises(LedgerError, match="no privacy ledger"):
        load_ledger(tmp_path)
    open_ledger(tmp_path, budget=2.0).record(
        ROUND, run="r", server_round=1, clip_norm=1.0
    )
    ledger = load_ledger(tmp_path)
    assert ledger.epsilon_budget == 2.0
    assert ledger.remaining() == pytest.approx(2.0 - ledger.spent())
