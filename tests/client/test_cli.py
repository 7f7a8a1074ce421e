"""``hospfed-client``: the hospital's commands."""

import pandas as pd
import pytest

from hospfed.client.cli import main
from hospfed.client.privacy import LEDGER_FILE, DpMechanism, PrivacyLedger


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
    assert "dropped (7)" in out and "pseudonymised (1): mrn" in out
    code, out, _ = run(capsys, "inspect", str(data), "--key", str(key))
    assert code == 0
    assert "fed-heart-disease v1" in out and "200" in out and "label 'num'" in out
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
