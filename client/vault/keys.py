"""Data keys: generating, storing, loading, and deriving purpose keys from them.

A hospital's data key is 256 random bits kept in a key file readable by its
owner only (:func:`generate_key_file`, :func:`load_key`), or derived from a
passphrase with scrypt for hospitals that keep secrets in a vault
(:class:`Passphrase`, :func:`derive_passphrase_key`). A :class:`DataKey`
never shows its bytes in ``repr``/``str``; it has a short public id (one-way
HKDF output) that file headers and ``inspect`` show instead, and
:meth:`DataKey.derive` gives independent subkeys per purpose (file
encryption, pseudonyms, date shifts) with HKDF-SHA256. Every primitive comes
from ``cryptography``.

Key file format, version 1 (text, ASCII, three lines)::

    hospfed-key v1
    key-id <16 hex digits>
    <the 32 key bytes, standard base64>

The ``key-id`` line lets :func:`load_key` detect a damaged file.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from hospfed.common.errors import ConfigError, KeyFileError
from hospfed.common.files import create_new

KEY_BYTES = 32
"""Length of a data key: 256 bits."""

KEY_ID_BYTES = 8
"""Length of a key id (shown as 16 hex digits)."""

KEY_FILE_MODE = 0o600
"""Permissions of a key file: read/write for its owner, nothing for others."""

PASSPHRASE_ENV = "HOSPFED_PASSPHRASE"
"""The environment variable callers read a passphrase from, by convention."""

_KEY_FILE_MAGIC = "hospfed-key"
_KEY_FILE_VERSION = "v1"
_KEY_FILE_MAX_BYTES = 4096
_KEY_ID_INFO = b"hospfed/v1/key-id"
_DERIVE_INFO = b"hospfed/v1/derive/"
_HKDF_MAX_LENGTH = 255 * 32

_SCRYPT_MIN_N = 2**14
_SCRYPT_MAX_N = 2**20
_SCRYPT_MAX_R = 32
_SCRYPT_MAX_P = 16
_SCRYPT_MAX_MEMORY = 256 * 2**20
_SCRYPT_MAX_WORK = 2**22


def _hkdf(material: bytes, *, info: bytes, salt: bytes | None, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(
        material
    )


def key_id_of(material: bytes) -> str:
    """Return the public id of a key: 8 bytes of HKDF-SHA256 output, as hex.

    Parameters
    ----------
    material : bytes
        The key bytes.

    Returns
    -------
    str
        16 hex digits; the key cannot be recovered from them.

    """
    return _hkdf(material, info=_KEY_ID_INFO, salt=None, length=KEY_ID_BYTES).hex()


@dataclass(frozen=True, repr=False)
class DataKey:
    """A 256-bit data key and its public id.

    ``repr`` and ``str`` show the key id only, never the key bytes.

    Parameters
    ----------
    material : bytes
        The 32 key bytes.
    key_id : str
        The key's public id; computed from ``material`` when left empty, and
        checked against it when given.

    Raises
    ------
    KeyFileError
        If ``material`` is not 32 bytes, or ``key_id`` does not belong to it.

    """

    material: bytes
    key_id: str = ""

    def __post_init__(self) -> None:
        material = self.material
        if not isinstance(material, bytes):
            raise KeyFileError(
                f"a data key must be bytes, not {type(material).__name__}"
            )
        if len(material) != KEY_BYTES:
            raise KeyFileError(
                f"a data key must be {KEY_BYTES} bytes, not {len(material)}"
            )
        computed = key_id_of(self.material)
        if not self.key_id:
            object.__setattr__(self, "key_id", computed)
        elif self.key_id != computed:
            raise KeyFileError(
                f"key id {self.key_id} does not belong to this key (its id is "
                f"{computed})"
            )

    def __repr__(self) -> str:
        return f"DataKey(key_id={self.key_id!r})"

    def derive(
        self, purpose: str, length: int = 32, *, salt: bytes | None = None
    ) -> bytes:
        """Derive an independent subkey for one purpose (HKDF-SHA256).

        Parameters
        ----------
        purpose : str
            What the subkey is for, e.g. ``"pseudonym"`` or ``"date-shift"``;
            different purposes give unrelated subkeys.
        length : int
            Subkey length in bytes (1 to 8160).
        salt : bytes or None
            Optional HKDF salt, e.g. a per-file random id.

        Returns
        -------
        bytes
            The subkey.

        """
        if not purpose:
            raise ValueError("derive: purpose must be a non-empty string")
        if not 1 <= length <= _HKDF_MAX_LENGTH:
            raise ValueError(
                f"derive: length must be 1..{_HKDF_MAX_LENGTH}, got {length}"
            )
        info = _DERIVE_INFO + purpose.encode("utf-8")
        return _hkdf(self.material, info=info, salt=salt, length=length)


class Passphrase:
    """A passphrase from which a data key is derived with scrypt.

    ``repr`` and ``str`` hide it. It is normalised to Unicode NFC so that the
    same passphrase typed on different systems gives the same key.

    Parameters
    ----------
    secret : str
        The passphrase; must not be empty.

    Raises
    ------
    KeyFileError
        If the passphrase is empty.

    """

    __slots__ = ("_secret",)

    def __init__(self, secret: str) -> None:
        if not isinstance(secret, str) or not secret:
            raise KeyFileError("the passphrase is empty; give a non-empty passphrase")
        self._secret = unicodedata.normalize("NFC", secret)

    @classmethod
    def from_env(cls, variable: str = PASSPHRASE_ENV) -> Passphrase:
        """Read a passphrase from the environment variable ``variable``.

        Raises
        ------
        KeyFileError
            If the variable is unset or empty.

        """
        secret = os.environ.get(variable, "")
        if not secret:
            raise KeyFileError(
                f"environment variable {variable} is unset or empty; "
                "set it to the passphrase"
            )
        return cls(secret)

    def encode(self) -> bytes:
        """Return the passphrase as UTF-8 bytes, the input of the KDF."""
        return self._secret.encode("utf-8")

    def __repr__(self) -> str:
        return "Passphrase(<hidden>)"

    __str__ = __repr__


KeySource: TypeAlias = DataKey | Passphrase
"""What opens an encrypted file: a data key, or a passphrase."""


DERIVATION_SALT = b"hospfed-deid-v1!"
"""The fixed, public scrypt salt that turns a passphrase into the hospital's
long-term key (:func:`hospital_key`). A passphrase has no key file to derive
secrets from, and an encrypted file's own salt changes with every file; this
salt keeps a passphrase hospital's pseudonyms and ledger MACs the same across
exports and runs. It is part of format v1: changing it orphans every
passphrase hospital's pseudonyms."""


def hospital_key(source: KeySource) -> DataKey:
    """The hospital's long-term key, from which its secrets are derived.

    The key file's key itself; for a passphrase, scrypt (default cost) with
    :data:`DERIVATION_SALT`. Secrets are then HKDF subkeys of it
    (:meth:`DataKey.derive`), one per purpose.
    """
    if isinstance(source, Passphrase):
        return derive_passphrase_key(
            source, salt=DERIVATION_SALT, params=ScryptParams()
        )
    return source


def check_one_key(
    key_file: Path | None, passphrase_env: str | None, *, names: tuple[str, str]
) -> None:
    """Raise ConfigError unless exactly one of a key file and a passphrase is given.

    ``names`` says how the caller spells the two (flags or config keys).
    """
    if (key_file is None) == (passphrase_env is None):
        raise ConfigError(
            f"give exactly one of {names[0]} (the hospital's key file) or "
            f"{names[1]} (an environment variable holding the passphrase)"
        )


def open_key_source(
    key_file: Path | None, passphrase_env: str | None, *, names: tuple[str, str]
) -> KeySource:
    """Load the key file, or read the passphrase from its environment variable.

    Raises
    ------
    ConfigError
        If not exactly one of the two is given.
    KeyFileError
        If the key file is unsafe or malformed, or the variable is unset.

    """
    check_one_key(key_file, passphrase_env, names=names)
    if key_file is not None:
        return load_key(key_file)
    assert passphrase_env is not None
    return Passphrase.from_env(passphrase_env)


@dataclass(frozen=True, kw_only=True)
class ScryptParams:
    """Cost parameters of scrypt (the passphrase KDF).

    The defaults (n=2**15, r=8, p=1) take about 0.1 s and 32 MiB. Parameters
    read from a file are bounded (``n`` a power of two in 2**14..2**20,
    ``r`` <= 32, ``p`` <= 16, at most 256 MiB of memory and 16 times the
    default work) so that a crafted header cannot make a reader spend
    minutes or gigabytes.

    Raises
    ------
    KeyFileError
        If a parameter is out of these bounds.

    """

    n: int = 2**15
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise KeyFileError(
                f"scrypt parameters n={self.n}, r={self.r}, p={self.p} refused: "
                f"{problem}"
            )

    def _problem(self) -> str | None:
        n, r, p = self.n, self.r, self.p
        if not _SCRYPT_MIN_N <= n <= _SCRYPT_MAX_N or n & (n - 1):
            return "n must be a power of two from 2**14 to 2**20"
        if not 1 <= r <= _SCRYPT_MAX_R or not 1 <= p <= _SCRYPT_MAX_P:
            return f"r must be 1..{_SCRYPT_MAX_R} and p 1..{_SCRYPT_MAX_P}"
        if 128 * n * r > _SCRYPT_MAX_MEMORY:
            return f"needs more than {_SCRYPT_MAX_MEMORY // 2**20} MiB of memory"
        if n * r * p > _SCRYPT_MAX_WORK:
            return "needs more than 16 times the default work"
        return None


def derive_passphrase_key(
    passphrase: Passphrase, *, salt: bytes, params: ScryptParams
) -> DataKey:
    """Derive a data key from a passphrase with scrypt.

    Parameters
    ----------
    passphrase : Passphrase
        The passphrase.
    salt : bytes
        A random salt (16 bytes), stored beside whatever the key protects.
    params : ScryptParams
        The cost parameters, stored beside the salt.

    Returns
    -------
    DataKey
        The derived key.

    """
    kdf = Scrypt(salt=salt, length=KEY_BYTES, n=params.n, r=params.r, p=params.p)
    return DataKey(kdf.derive(passphrase.encode()))


def generate_key_file(path: Path) -> DataKey:
    """Create a new random 256-bit data key in a key file with mode 0600.

    The file is written under a temporary name, synced, then linked into
    place, so it appears whole or not at all and never replaces a file.

    Parameters
    ----------
    path : Path
        Where to create the key file; its directory must exist.

    Returns
    -------
    DataKey
        The new key.

    Raises
    ------
    KeyFileError
        If ``path`` already exists or its directory does not.

    """
    if path.exists() or path.is_symlink():
        raise KeyFileError(
            f"key file {path} already exists; refusing to overwrite a key "
            "(data encrypted with it would be lost). Choose another path"
        )
    if not path.parent.is_dir():
        raise KeyFileError(f"cannot create key file {path}: no directory {path.parent}")
    key = DataKey(secrets.token_bytes(KEY_BYTES))
    _create_exclusively(path, _format_key_file(key).encode("ascii"))
    return key


def _format_key_file(key: DataKey) -> str:
    encoded = base64.b64encode(key.material).decode("ascii")
    return f"{_KEY_FILE_MAGIC} {_KEY_FILE_VERSION}\nkey-id {key.key_id}\n{encoded}\n"


def _create_exclusively(path: Path, data: bytes) -> None:
    try:
        create_new(path, data, mode=KEY_FILE_MODE)
    except FileExistsError:
        raise KeyFileError(
            f"key file {path} already exists; refusing to overwrite a key"
        ) from None


def load_key(path: Path) -> DataKey:
    """Load a data key from a key file written by :func:`generate_key_file`.

    Parameters
    ----------
    path : Path
        The key file.

    Returns
    -------
    DataKey
        The key.

    Raises
    ------
    KeyFileError
        If the file is missing, readable or writable by group or others
        (the message says to ``chmod 600`` it), or not a valid key file.

    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} not found") from None
    except OSError as error:
        raise KeyFileError(f"cannot read key file {path}: {error.strerror}") from None
    try:
        _check_key_file_mode(path, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(_KEY_FILE_MAX_BYTES + 1)
    return _parse_key_file(path, data)


def _check_key_file_mode(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError(f"key file {path} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"key file {path} is accessible by group or others (mode {mode:04o}); "
            f"refusing to use it. Run `chmod 600 {path}` (and check who could have "
            "read it)"
        )


def _parse_key_file(path: Path, data: bytes) -> DataKey:
    malformed = f"key file {path} is malformed"
    if len(data) > _KEY_FILE_MAX_BYTES:
        raise KeyFileError(f"{malformed}: larger than {_KEY_FILE_MAX_BYTES} bytes")
    try:
        lines = data.decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise KeyFileError(f"{malformed}: not ASCII text") from None
    first = lines[0].split(" ") if lines else []
    if len(first) != 2 or first[0] != _KEY_FILE_MAGIC:
        raise KeyFileError(
            f"{malformed}: it does not start with '{_KEY_FILE_MAGIC} "
            f"{_KEY_FILE_VERSION}' (is it a hospfed key file?)"
        )
    if first[1] != _KEY_FILE_VERSION:
        raise KeyFileError(
            f"key file {path} has unsupported version {first[1]!r} (this hospfed "
            f"reads {_KEY_FILE_VERSION}); upgrade hospfed"
        )
    if len(lines) != 3 or not lines[1].startswith("key-id "):
        raise KeyFileError(f"{malformed}: expected 3 lines (header, key-id, key)")
    return _decode_key(malformed, lines[1].removeprefix("key-id "), lines[2])


def _decode_key(malformed: str, key_id: str, encoded: str) -> DataKey:
    try:
        material = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise KeyFileError(f"{malformed}: the key line is not base64") from None
    if len(material) != KEY_BYTES:
        raise KeyFileError(
            f"{malformed}: the key is {len(material)} bytes, expected {KEY_BYTES}"
        )
    if key_id_of(material) != key_id:
        raise KeyFileError(
            f"{malformed}: its key does not match its key-id line (damaged); "
            "restore it from your backup"
        )
    return DataKey(material)
