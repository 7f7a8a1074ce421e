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
