"""Atomic file writes: a reader sees the old file or the whole new one.

Every file hospfed writes goes through :func:`atomic_write` or
:func:`atomic_write_many` (temporary file in the same directory, fsync,
``os.replace``, fsync of the directory), so a crash or an error never leaves
a half-written file, and a write that returned survives a power loss.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from hospfed.common.errors import ConfigError


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
    _fsync_dir(path.parent)  # the rename itself survives a crash


def create_new(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write a file that must not exist yet, atomically and durably.

    The content is written and synced under a temporary name, then linked
    into place (a hard link never replaces an existing file), and the
    directory is synced, so the new name survives a crash (a lost key file
    is lost data).

    Raises
    ------
    FileExistsError
        If ``path`` already exists; it is left untouched.

    """
    tmp = _write_temp(path.parent, path.name, data, mode)
    try:
        _link_without_replacing(tmp, path)
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _link_without_replacing(tmp: str, path: Path) -> None:
    try:
        os.link(tmp, path)
    except OSError as error:  # a filesystem without hard links
        if isinstance(error, FileExistsError) or error.errno not in (
            errno.EPERM,
            errno.ENOTSUP,
            errno.EOPNOTSUPP,
        ):
            raise
        if path.exists():
            raise FileExistsError(errno.EEXIST, "file exists", str(path)) from None
        os.replace(tmp, path)


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
    all are on disk are they renamed into place, one after the other (a
    directory cannot be swapped atomically without moving away whatever else
    the user keeps in it). A failure before the renames changes nothing.

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
        _fsync_dir(directory)
    finally:
        for tmp in staged.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_output_dir(path: Path, *, what: str = "output") -> None:
    """Check, before any work, that ``path`` can become a results directory.

    The check is real, not ``os.access`` (which says yes to root everywhere,
    ``/proc`` included): the missing directories are created, a probe file
    is written, synced and deleted inside ``path``, and the directories the
    check created are removed again, so a run that fails later leaves no
    empty directory behind.

    Parameters
    ----------
    path : Path
        The directory to be written.
    what : str
        What the directory is, for the message (e.g. ``"state dir"``).

    Raises
    ------
    ConfigError
        If ``path`` or one of its parents is a file, or the system refuses
        to create the directory or to write a file in it.

    """
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{what} {path}: {existing} exists and is not a directory")
    missing = [p for p in (path, *path.parents) if not p.exists()]
    created: list[Path] = []
    try:
        for directory in reversed(missing):
            directory.mkdir()
            created.append(directory)
        fd, probe = tempfile.mkstemp(prefix=".hospfed-probe-", dir=path)
        try:
            os.write(fd, b"hospfed write probe\n")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(
            f"{what} {path}: cannot create or write files there ({reason}); "
            "choose another directory"
        ) from None
    finally:
        for directory in reversed(created):
            with contextlib.suppress(OSError):
                directory.rmdir()


def check_owner_only(path: Path) -> None:
    """Refuse a private file (a key) that group or others may read or write.

    (The data key file has its own check on the open descriptor, in
    ``client/vault/keys.py``, so that the file checked is the file read.)

    Raises
    ------
    KeyFileError
        Naming the mode and the ``chmod 600`` that fixes it.

    """
    from hospfed.common.errors import KeyFileError

    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise KeyFileError(
            f"{path} is readable by other users (mode {mode:o}): "
            f"run `chmod 600 {path}` and keep it private"
        )
