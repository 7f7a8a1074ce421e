"""Atomic file writes: a reader sees the old file or the whole new one.

Every file hospfed writes goes through :func:`atomic_write` (temporary file
in the same directory, fsync, ``os.replace``), so a crash or an error never
leaves partial output behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically with permissions ``mode``.

    Parameters
    ----------
    path : Path
        Destination; its directory must exist.
    data : bytes
        The whole new content.
    mode : int
        File permissions, set before the file becomes visible.

    """
    tmp = _write_temp(path.parent, path.name, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write_temp(directory: Path, name: str, data: bytes, mode: int) -> str:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def atomic_write_many(directory: Path, files: dict[str, bytes]) -> None:
    """Write several files so that a failure leaves none of them half-done.

    Every file is first written and synced under a temporary name; only when
    all are on disk are they renamed into place.

    Parameters
    ----------
    directory : Path
        Destination directory (created if missing).
    files : dict of str to bytes
        File name to content.

    """
    directory.mkdir(parents=True, exist_ok=True)
    blocked = [name for name in files if (directory / name).is_dir()]
    if blocked:
        raise IsADirectoryError(
            f"cannot write {blocked} in {directory}: a directory has that name"
        )
    staged: dict[str, str] = {}
    try:
        for name, data in files.items():
            staged[name] = _write_temp(directory, name, data, 0o644)
        for name, tmp in staged.items():
            os.replace(tmp, directory / name)
    finally:
        for tmp in staged.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
