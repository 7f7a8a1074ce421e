"""``hospfed-client``: the hospital's commands."""

import pandas as pd
import pytest

from hospfed.client.cli import main
from hospfed.client.privacy import LEDGER_FILE, DpMechanism, PrivacyLedger
from hospfed.common.datasets.heart_schema import FED_HEART_RAW_SCHEMA, FED_HEART_SCHEMA


def run(capsys, *argv):
    with pytest.raises(SystemExit) as stop:
        main(list(argv))
    out, err = capsys.readouterr()
    return stop.value.code, out, err


def test_budget_prints_spent_and_remaining(tmp_path, capsys):
    ledger = PrivacyLedger.open(tmp_path, dataset="d", delta=1e-3, epsilon_budget=3.0)
    for server_round in (1, 2):
        ledger.reserve(
            DpMechanism(noise_multiplier=1.2, sample_rate=0.02, steps=100),
            run="7",
            server_round=server_round,
            clip_norm=1,
        )
    code, out, _ = run(capsys, "budget", "show", "--state-dir", str(tmp_path))
    assert code == 0
    spent = ledger.spent()
    assert f"{spent:.4f}" in out and f"{3.0 - spent:.4f}" in out
    assert "DP rounds recorded" in out and "7 round 2" in out


def test_budget_without_a_ledger_is_a_clear_error(tmp_path, capsys):
    code, _, err = run(capsys, "budget", "show", "--state-dir", str(tmp_path))
    assert code == 2
    assert err.strip() == (
        f"hospfed-client: error: no privacy ledger in {tmp_path}: the client has "
        "not trained with DP there yet (check --state-dir)"
    )


def test_budget_with_a_corrupt_ledger_never_reports_zero(tmp_path, capsys):
    (tmp_path / LEDGER_FILE).write_text("{")
    code, out, err = run(capsys, "budget", "show", "--state-dir", str(tmp_path))
    assert code == 2 and "cannot be read" in err and "restore it from backup" in err
    assert "epsilon spent" not in out


def test_data_steward_workflow_from_keygen_to_check(tmp_path, capsys):
    key, raw, data = tmp_path / "site.key", tmp_path / "raw.csv", tmp_path / "site.hfd"
    code, out, _ = run(capsys, "keygen", "--out", str(key))
    assert code == 0 and "key id" in out
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.read_text() not in out
    code, out, _ = run(capsys, "demo-export", "--hospital", "va", "--out", str(raw))
    assert code == 0 and "200 patients of va" in out
    code, out, _ = run(
        capsys, "prepare", str(raw), "--key", str(key), "--out", str(data)
    )
    assert code == 0, out
    assert "rows: 200 in, 200 out" in out and "k-anonymity" in out
    dropped = [c.name for c in FED_HEART_RAW_SCHEMA.columns if c.action == "drop"]
    assert f"dropped ({len(dropped)})" in out and "pseudonymised (1): mrn" in out
    code, out, _ = run(capsys, "inspect", str(data), "--key", str(key))
    assert code == 0
    assert f"{FED_HEART_SCHEMA.name} v{FED_HEART_SCHEMA.version}" in out
    assert "200" in out and "label 'num'" in out
    exported = pd.read_csv(raw, dtype=str, keep_default_na=False)
    for column in ("mrn", "patient_name", "ssn", "phone", "email"):
        assert not any(value and value in out for value in exported[column])
    code, out, _ = run(capsys, "check", str(data), "--key", str(key))
    assert code == 0 and "train" in out and "85" in out


def test_a_key_readable_by_others_is_refused(tmp_path, capsys):
    key = tmp_path / "site.key"
    run(capsys, "keygen", "--out", str(key))
    key.chmod(0o644)
    code, _, err = run(capsys, "inspect", str(tmp_path / "x.hfd"), "--key", str(key))
    assert code == 2 and "chmod 600" in err and err.count("\n") == 1


def test_keygen_never_overwrites_a_key(tmp_path, capsys):
    key = tmp_path / "site.key"
    run(capsys, "keygen", "--out", str(key))
    before = key.read_bytes()
    code, _, err = run(capsys, "keygen", "--out", str(key))
    assert code == 2 and "already exists" in err
    assert key.read_bytes() == before


def test_prepare_with_a_wrong_key_source_is_a_usage_error(tmp_path, capsys):
    code, _, err = run(capsys, "prepare", str(tmp_path / "raw.csv"), "--out", "x.hfd")
    assert (
        code == 2
        and "exactly one of --key FILE (the hospital's key file) or --passphrase-env VAR"
        in err
    )


def test_prepare_with_a_broken_export_writes_nothing(tmp_path, capsys):
    key = tmp_path / "site.key"
    run(capsys, "keygen", "--out", str(key))
    raw = tmp_path / "raw.csv"
    run(capsys, "demo-export", "--hospital", "va", "--out", str(raw))
    frame = pd.read_csv(raw, dtype=str, keep_default_na=False)
    frame.loc[3, "chol"] = "9999"
    frame.to_csv(raw, index=False)
    code, _, err = run(
        capsys, "prepare", str(raw), "--key", str(key), "--out", str(tmp_path / "o.hfd")
    )
    assert code == 2 and "chol" in err
    assert not (tmp_path / "o.hfd").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw.csv", "site.key"]


@pytest.mark.parametrize("command", ["prepare", "inspect", "check"])
def test_an_unexpected_error_is_one_line_without_its_message(
    tmp_path, capsys, monkeypatch, command
):
    # A library's message may quote the data: only its type and place are shown.
    from hospfed.client import cli

    def boom(*args, **kwargs):
        raise ValueError("could not convert 'Angela Frazier 868-20-9730' to float")

    target = {
        "prepare": "prepare_export",
        "inspect": "open_prepared",
        "check": "load_hospital_data",
    }[command]
    monkeypatch.setattr(cli, target, boom)
    key, raw = tmp_path / "site.key", tmp_path / "raw.csv"
    run(capsys, "keygen", "--out", str(key))
    (tmp_path / "site.hfd").write_bytes(b"x")
    monkeypatch.setattr(cli, "read_header", lambda path: None)
    argv = {
        "prepare": ["prepare", str(raw), "--out", str(tmp_path / "o.hfd")],
        "inspect": ["inspect", str(tmp_path / "site.hfd")],
        "check": ["check", str(tmp_path / "site.hfd")],
    }[command]
    code, out, err = run(capsys, *argv, "--key", str(key))
    assert code == 2 and err.count("\n") == 1
    assert f"{command} failed: unexpected ValueError at test_cli.py:" in err
    assert "report this as a bug" in err
    assert "Frazier" not in out + err and "868" not in out + err


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (OSError(28, "No space left on device", "site.hfd"), "No space left on device"),
        (OSError("Couldn't deserialize: Angela Frazier"), "unexpected OSError at"),
    ],
    ids=["system", "library"],
)
def test_a_system_error_is_shown_a_library_os_error_is_not(
    tmp_path, capsys, monkeypatch, error, shown
):
    from hospfed.client import cli

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(cli, "prepare_export", fail)
    key = tmp_path / "site.key"
    run(capsys, "keygen", "--out", str(key))
    code, _, err = run(
        capsys, "prepare", str(tmp_path / "r.csv"), "--out", "o.hfd", "--key", str(key)
    )
    assert code != 0 and err.count("\n") == 1 and shown in err
    assert "Frazier" not in err
