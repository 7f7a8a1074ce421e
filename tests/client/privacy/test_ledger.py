"""The privacy ledger survives restarts and never becomes empty by accident."""

import json
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hospfed.client.privacy import (
    LEDGER_FILE,
    DpMechanism,
    HospitalPrivacy,
    PrivacyLedger,
    PrivacySettings,
    epsilon_spent,
    load_ledger,
)
from hospfed.common.errors import LedgerError, PrivacyBudgetError
from hospfed.common.training import TrainPlan

ROUND = DpMechanism(noise_multiplier=1.5, sample_rate=0.02, steps=100)


def open_ledger(state_dir, dataset="data-a", budget=1.0):
    return PrivacyLedger.open(
        state_dir, dataset=dataset, delta=1e-3, epsilon_budget=budget
    )


def test_spending_survives_reopening(tmp_path):
    ledger = open_ledger(tmp_path)
    ledger.reserve(ROUND, run="r1", server_round=1, clip_norm=1.0)
    ledger.reserve(ROUND, run="r2", server_round=1, clip_norm=1.0)
    reopened = open_ledger(tmp_path)
    assert reopened.history == [ROUND, ROUND]
    assert reopened.spent() == pytest.approx(epsilon_spent([ROUND, ROUND], 1e-3))
    assert reopened.spent() > 0
    assert [e.run for e in reopened.entries] == ["r1", "r2"]


def test_ledger_file_is_private_json(tmp_path):
    open_ledger(tmp_path).reserve(ROUND, run="r", server_round=3, clip_norm=0.5)
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
    assert open_ledger(tmp_path, budget=0.5).entries == []


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"format": "other"}'])
def test_a_corrupt_ledger_is_an_error_and_is_left_alone(tmp_path, content):
    path = tmp_path / LEDGER_FILE
    path.write_bytes(content)
    with pytest.raises(LedgerError):
        open_ledger(tmp_path)
    assert path.read_bytes() == content


def test_a_malformed_entry_is_an_error_not_an_empty_ledger(tmp_path):
    open_ledger(tmp_path).reserve(ROUND, run="r", server_round=1, clip_norm=1.0)
    path = tmp_path / LEDGER_FILE
    document = json.loads(path.read_text())
    del document["entries"][0]["steps"]
    path.write_text(json.dumps(document))
    with pytest.raises(LedgerError, match="malformed"):
        open_ledger(tmp_path)


def test_a_ledger_for_other_data_or_delta_is_refused(tmp_path):
    open_ledger(tmp_path).reserve(ROUND, run="r", server_round=1, clip_norm=1.0)
    with pytest.raises(LedgerError, match="belongs to other data"):
        open_ledger(tmp_path, dataset="data-b")
    with pytest.raises(LedgerError, match="delta"):
        PrivacyLedger.open(tmp_path, dataset="data-a", delta=1e-5, epsilon_budget=1)


def test_a_failed_write_keeps_the_previous_ledger(tmp_path, monkeypatch):
    ledger = open_ledger(tmp_path)
    ledger.reserve(ROUND, run="r", server_round=1, clip_norm=1.0)
    before = (tmp_path / LEDGER_FILE).read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("hospfed.client.privacy.ledger.atomic_write", broken)
    with pytest.raises(OSError, match="disk full"):
        ledger.reserve(ROUND, run="r", server_round=2, clip_norm=1.0)
    assert ledger.history == [ROUND]
    assert (tmp_path / LEDGER_FILE).read_bytes() == before


def test_reporting_needs_an_existing_ledger(tmp_path):
    with pytest.raises(LedgerError, match="no privacy ledger"):
        load_ledger(tmp_path)
    open_ledger(tmp_path, budget=2.0).reserve(
        ROUND, run="r", server_round=1, clip_norm=1.0
    )
    ledger = load_ledger(tmp_path)
    assert ledger.epsilon_budget == 2.0
    assert ledger.remaining() == pytest.approx(2.0 - ledger.spent())


# --- the lifetime budget is the data steward's, fixed once ---------------------


def test_a_run_cannot_raise_the_lifetime_budget(tmp_path):
    open_ledger(tmp_path, budget=1.0).reserve(
        ROUND, run="r", server_round=1, clip_norm=1.0
    )
    with pytest.raises(LedgerError, match="budget raise") as info:
        open_ledger(tmp_path, budget=2.0)
    assert "lifetime privacy budget is epsilon 1" in str(info.value)
    # A smaller epsilon is a cap for that run; the lifetime budget stays.
    capped = open_ledger(tmp_path, budget=0.2)
    assert capped.epsilon_budget == 1.0
    with pytest.raises(PrivacyBudgetError, match="budget of 0.2"):
        capped.reserve(ROUND, run="s", server_round=1, clip_norm=1.0, cap=0.2)


def test_raising_the_budget_is_recorded_with_its_reason(tmp_path):
    ledger = open_ledger(tmp_path, budget=1.0)
    with pytest.raises(LedgerError, match="needs a reason"):
        ledger.raise_budget(2.0, reason="  ")
    with pytest.raises(LedgerError, match="not a raise"):
        ledger.raise_budget(0.5, reason="lower it")
    ledger.raise_budget(2.0, reason="ethics board approval 2026-11")
    reopened = open_ledger(tmp_path, budget=2.0)
    assert reopened.epsilon_budget == 2.0
    [change] = reopened.budget_changes
    assert (change.previous, change.epsilon) == (1.0, 2.0)
    assert change.reason == "ethics board approval 2026-11"


def test_init_fixes_the_budget_and_the_first_round_binds_the_data(tmp_path):
    PrivacyLedger.init(tmp_path, epsilon=0.8, delta=1e-3)
    with pytest.raises(LedgerError, match="already exists"):
        PrivacyLedger.init(tmp_path, epsilon=5.0, delta=1e-3)
    with pytest.raises(LedgerError, match="cannot raise it"):
        open_ledger(tmp_path, budget=1.0)
    ledger = open_ledger(tmp_path, budget=0.8)
    ledger.reserve(ROUND, run="r", server_round=1, clip_norm=1.0)
    assert load_ledger(tmp_path).dataset == "data-a"
    with pytest.raises(LedgerError, match="belongs to other data"):
        open_ledger(tmp_path, dataset="data-b", budget=0.8)


def test_noise_is_derived_from_the_budget_that_remains(tmp_path):
    settings = PrivacySettings(epsilon=1.0, delta=1e-3, planned_rounds=3)
    plan = TrainPlan(learning_rate=0.1, local_steps=50, batch_size=4)
    first = HospitalPrivacy(settings=settings, state_dir=tmp_path, dataset="d")
    noise_a = first.authorise(
        plan, num_examples=200, run="a", server_round=1
    ).step.noise_multiplier
    # Run "a" stops after one round; run "b" derives its noise from what is left
    # and all of its planned rounds fit.
    second = HospitalPrivacy(settings=settings, state_dir=tmp_path, dataset="d")
    rounds = [
        second.authorise(plan, num_examples=200, run="b", server_round=r)
        for r in (1, 2, 3)
    ]
    noise_b = {r.step.noise_multiplier for r in rounds}
    assert len(noise_b) == 1 and noise_b.pop() > noise_a
    assert load_ledger(tmp_path).spent() <= 1.0
    assert rounds[-1].epsilon_after == pytest.approx(1.0, rel=0.02)


def test_a_spent_budget_declines_the_next_run_before_training(tmp_path):
    # The vector ledger has spent epsilon 2.66 of 3; a run capped at 2 has
    # nothing left to derive its noise from, and one with a fixed noise whose
    # round does not fit is declined too. Nothing is recorded.
    (tmp_path / LEDGER_FILE).write_bytes(
        (VECTORS / "v1-privacy-ledger.json").read_bytes()
    )
    plan = TrainPlan(learning_rate=0.1, local_steps=100, batch_size=20)
    dataset = "3f1c" * 16
    capped = PrivacySettings(epsilon=2.0, delta=1e-3)
    policy = HospitalPrivacy(settings=capped, state_dir=tmp_path, dataset=dataset)
    with pytest.raises(PrivacyBudgetError, match="spent before run b"):
        policy.authorise(plan, num_examples=200, run="b", server_round=1)
    fixed = PrivacySettings(epsilon=3.0, delta=1e-3, noise_multiplier=0.5)
    policy = HospitalPrivacy(settings=fixed, state_dir=tmp_path, dataset=dataset)
    with pytest.raises(PrivacyBudgetError, match="declines the round"):
        policy.authorise(plan, num_examples=200, run="c", server_round=1)
    assert len(load_ledger(tmp_path).entries) == 2


CONCURRENT_CLIENT = """
import sys, time
from pathlib import Path
from hospfed.client.privacy import (
    DpMechanism, HospitalPrivacy, PrivacySettings, epsilon_spent
)
from hospfed.common.errors import PrivacyBudgetError
from hospfed.common.training import TrainPlan

state, run, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
settings = PrivacySettings(epsilon=1.0, delta=1e-3, noise_multiplier=2.0)
policy = HospitalPrivacy(settings=settings, state_dir=state, dataset="d")
plan = TrainPlan(learning_rate=0.1, local_steps=5, batch_size=4)
epsilon_spent([DpMechanism(noise_multiplier=2.0, sample_rate=0.02, steps=5)], 1e-3)
while not go.exists():
    time.sleep(0.001)
granted = 0
while True:
    try:
        policy.authorise(plan, num_examples=200, run=run, server_round=granted + 1)
    except PrivacyBudgetError:
        break
    granted += 1
    time.sleep(0.002)  # training happens here, outside the lock
print(granted)
"""


def test_two_processes_on_one_state_directory_never_overspend(tmp_path):
    state, go = tmp_path / "state", tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_CLIENT, str(state), run, str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for run in ("a", "b")
    ]
    time.sleep(2.0)  # both interpreters up and polling
    go.touch()
    granted = [int(child.communicate(timeout=240)[0]) for child in children]
    print("rounds granted to each process:", granted)
    assert all(child.returncode == 0 for child in children)
    ledger = load_ledger(state)
    assert min(granted) > 0  # they really did compete
    assert len(ledger.entries) == sum(granted)  # no reservation lost
    assert ledger.spent() <= 1.0
    one_more = DpMechanism(noise_multiplier=2.0, sample_rate=0.02, steps=5)
    with pytest.raises(PrivacyBudgetError):
        ledger.authorise(one_more, server_round=0)


# --- known answers: ledgers hospitals already hold must keep opening ----------

VECTORS = Path(__file__).parent / "vectors"


def test_a_version_1_ledger_reads_and_is_upgraded_in_place(tmp_path):
    (tmp_path / LEDGER_FILE).write_bytes(
        (VECTORS / "v1-privacy-ledger.json").read_bytes()
    )
    ledger = load_ledger(tmp_path)
    assert ledger.dataset == "3f1c" * 16 and ledger.epsilon_budget == 3.0
    assert ledger.history == [
        DpMechanism(noise_multiplier=1.1, sample_rate=0.02, steps=100),
        DpMechanism(noise_multiplier=0.9, sample_rate=0.05, steps=50),
    ]
    assert [e.recorded_at for e in ledger.entries] == [1795000000.0, 1795000060.5]
    assert ledger.spent() == pytest.approx(2.6637032137778016, rel=1e-9)
    ledger.raise_budget(4.0, reason="upgrade test")
    document = json.loads((tmp_path / LEDGER_FILE).read_text())
    assert document["version"] == 2 and len(document["entries"]) == 2
    assert load_ledger(tmp_path).spent() == pytest.approx(2.6637032137778016)


def test_a_version_2_ledger_reads(tmp_path):
    (tmp_path / LEDGER_FILE).write_bytes(
        (VECTORS / "v2-privacy-ledger.json").read_bytes()
    )
    ledger = load_ledger(tmp_path, mac_key=bytes(range(32)))  # its MAC verifies
    assert ledger.epsilon_budget == 4.0
    [change] = ledger.budget_changes
    assert (change.previous, change.epsilon, change.reason) == (3.0, 4.0, "approved")
    assert ledger.spent() == pytest.approx(2.6637032137778016, rel=1e-9)


# --- tamper evidence: the MAC and the spending receipt ------------------------

KEY = bytes(range(32))


def keyed(state_dir, receipt_dir, budget=5.0, key=KEY):
    return PrivacyLedger.open(
        state_dir,
        dataset="data-a",
        delta=1e-3,
        epsilon_budget=budget,
        mac_key=key,
        receipt_dir=receipt_dir,
    )


def edit(path, change):
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["entries"].pop(), "edited outside hospfed"),
        (lambda d: d.update({"epsilon-budget": 50.0}), "edited outside hospfed"),
        (lambda d: d["entries"][0].update({"steps": 1}), "edited outside hospfed"),
        (lambda d: d.pop("mac"), "carries no MAC"),
    ],
)
def test_an_edited_ledger_is_refused_naming_the_problem(tmp_path, change, message):
    state, data = tmp_path / "state", tmp_path / "data"
    data.mkdir()
    ledger = keyed(state, data)
    for server_round in (1, 2):
        ledger.reserve(ROUND, run="r", server_round=server_round, clip_norm=1.0)
    edit(state / LEDGER_FILE, change)
    with pytest.raises(LedgerError, match=message):
        keyed(state, data)


def test_a_ledger_under_another_key_is_refused(tmp_path):
    state, data = tmp_path / "state", tmp_path / "data"
    data.mkdir()
    keyed(state, data).reserve(ROUND, run="r", server_round=1, clip_norm=1.0)
    with pytest.raises(LedgerError):
        keyed(state, data, key=bytes(32))


def test_a_deleted_ledger_does_not_reset_the_budget(tmp_path):
    state, data = tmp_path / "state", tmp_path / "data"
    data.mkdir()
    ledger = keyed(state, data)
    for server_round in (1, 2, 3):
        ledger.reserve(ROUND, run="r", server_round=server_round, clip_norm=1.0)
    backup = (state / LEDGER_FILE).read_bytes()
    (state / LEDGER_FILE).unlink()
    with pytest.raises(LedgerError, match="has run 3 DP rounds") as info:
        keyed(state, data)
    assert "restore the ledger" in str(info.value)
    assert not (state / LEDGER_FILE).exists()  # nothing was started afresh
    # Another state directory is no way around it either.
    with pytest.raises(LedgerError, match="has run 3 DP rounds"):
        keyed(tmp_path / "fresh-state", data)
    (state / LEDGER_FILE).write_bytes(backup)
    assert len(keyed(state, data).entries) == 3


def test_an_older_authentic_ledger_cannot_roll_spending_back(tmp_path):
    state, data = tmp_path / "state", tmp_path / "data"
    data.mkdir()
    ledger = keyed(state, data)
    ledger.reserve(ROUND, run="r", server_round=1, clip_norm=1.0)
    older = (state / LEDGER_FILE).read_bytes()
    ledger.reserve(ROUND, run="r", server_round=2, clip_norm=1.0)
    (state / LEDGER_FILE).write_bytes(older)  # a valid MAC, one round short
    with pytest.raises(LedgerError, match="records 1 DP rounds but .* records 2"):
        keyed(state, data)


def test_an_edited_receipt_is_refused(tmp_path):
    state, data = tmp_path / "state", tmp_path / "data"
    data.mkdir()
    keyed(state, data).reserve(ROUND, run="r", server_round=1, clip_norm=1.0)
    [receipt] = data.glob(".hospfed-privacy-*.json")
    assert stat.S_IMODE(receipt.stat().st_mode) == 0o600
    edit(receipt, lambda d: d.update({"rounds": 0}))
    with pytest.raises(LedgerError, match="receipt .* was altered"):
        keyed(state, data)


def test_a_version_1_ledger_is_accepted_once_then_authenticated(tmp_path):
    state, data = tmp_path / "state", tmp_path / "data"
    state.mkdir()
    data.mkdir()
    (state / LEDGER_FILE).write_bytes((VECTORS / "v1-privacy-ledger.json").read_bytes())
    legacy = PrivacyLedger.open(
        state,
        dataset="3f1c" * 16,
        delta=1e-3,
        epsilon_budget=3.0,
        mac_key=KEY,
        receipt_dir=data,
    )
    legacy.save()  # upgraded: format 2, with a MAC and a receipt
    assert json.loads((state / LEDGER_FILE).read_text())["mac"]
    edit(state / LEDGER_FILE, lambda d: d["entries"].pop())
    with pytest.raises(LedgerError, match="edited outside hospfed"):
        load_ledger(state, mac_key=KEY)
