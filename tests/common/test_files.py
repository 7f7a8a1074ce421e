import os

import pytest

from hospfed.common.files import atomic_write


def test_atomic_write_replaces_the_whole_file_with_the_given_mode(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("old")
    atomic_write(path, b"new", mode=0o600)
    assert path.read_bytes() == b"new"
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_failed_atomic_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("old")

    with pytest.raises(TypeError):
        atomic_write(path, object())  # type: ignore[arg-type]
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_atomic_write_syncs_the_directory_after_the_rename(tmp_path, monkeypatch):
    # The rename is only durable once the directory entry is on disk: the
    # ledger relies on a returned write surviving a power loss.
    path = tmp_path / "ledger.json"
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        target = os.readlink(f"/proc/self/fd/{fd}")
        synced.append((target, path.exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic_write(path, b"{}")
    assert synced[-1] == (str(tmp_path), True)
    assert any(
        target.startswith(str(tmp_path / ".ledger.json.")) for target, _ in synced
    )
