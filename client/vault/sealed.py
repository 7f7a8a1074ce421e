"""The encrypted dataset file (``.hfd``): how hospital data is kept at rest.

This module owns the file format and the only calls that read or write it:
:func:`encrypt_file` / :func:`open_encrypted` for any bytes,
:func:`write_encrypted_frame` / :func:`read_encrypted_frame` for a pandas
frame (stored as Parquet, with its metadata inside the encryption), and
:func:`read_header` for the public header. Callers never see nonces, modes or
subkeys. Writes are atomic with mode 0600; decryption happens in memory only.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hospfed.client.vault.keys import (
    KEY_ID_BYTES,
    DataKey,
    KeySource,
    Passphrase,
    ScryptParams,
    derive_passphrase_key,
)
from hospfed.common.errors import ConfigError, DataError, DecryptionError, KeyFileError
from hospfed.common.files import atomic_write

# File format, version 1 (integers big-endian):
#
#   header   magic b"HOSPFED\x00" | version u16 | key source u8 (1 key file,
#            2 passphrase) | chunk size u32 | plaintext size u64 | file id 16
#            random bytes | key id 8 bytes | scrypt n, r, p u32 | scrypt salt
#            16 bytes (zeros for a key file) | HMAC-SHA256 of all of the above
#   chunks   one per `chunk size` plaintext bytes (a single empty one if there
#            are none): nonce 12 random bytes | AES-256-GCM ciphertext | tag 16,
#            associated data = file id | chunk index u64 | final flag u8
#   trailer  file id | HMAC-SHA256 of the file id
#
# The file key is the data key, or scrypt(passphrase, salt, n, r, p); the key
# id field holds its public id, so a wrong key or passphrase is reported before
# any chunk is tried. The content, header-MAC and trailer-MAC keys are HKDF
# subkeys of the file key salted with the file id, so each file has its own
# content key. The header MAC catches an altered header; the authenticated
# trailer tells a header grafted from another file apart from altered chunks;
# chunk index and final flag catch reordered, dropped or truncated chunks.

MAGIC = b"HOSPFED\x00"
FORMAT_VERSION = 1
SUFFIX = ".hfd"
DEFAULT_CHUNK_SIZE = 1 << 20
"""Plaintext bytes per chunk (1 MiB)."""
MAX_CHUNK_SIZE = 64 << 20
SEALED_FILE_MODE = 0o600

KeySourceKind = Literal["key-file", "passphrase"]
ByteData: TypeAlias = bytes | bytearray | memoryview

_SOURCE_CODES: dict[KeySourceKind, int] = {"key-file": 1, "passphrase": 2}
_SOURCE_KINDS = {code: kind for kind, code in _SOURCE_CODES.items()}
_PREFIX = struct.Struct("!8sH")
_FIELDS = struct.Struct(f"!8sHBIQ16s{KEY_ID_BYTES}sIII16s")
_AAD = struct.Struct("!16sQB")
_ID_BYTES = 16
_SALT_BYTES = 16
_MAC_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
HEADER_BYTES = _FIELDS.size + _MAC_BYTES
_TRAILER_BYTES = _ID_BYTES + _MAC_BYTES
_METADATA_KEY = b"hospfed.metadata"
_STORAGE_KEY = b"hospfed.pyarrow-strings"

_CONTENT = "sealed/v1/content"
_HEADER_MAC = "sealed/v1/header-mac"
_TRAILER_MAC = "sealed/v1/trailer-mac"


@dataclass(frozen=True)
class SealedHeader:
    """The public header of an encrypted dataset file (no key needed).

    Parameters
    ----------
    format_version : int
        Version of the file format.
    key_source : {"key-file", "passphrase"}
        What the file was encrypted with.
    key_id : str
        Public id of the file key: the key file's id, or (passphrase) the id
        of the key scrypt derives, used to tell a wrong passphrase early.
    scrypt : ScryptParams or None
        scrypt cost parameters when a passphrase was used.
    file_id : str
        Random id of this file (hex).
    chunk_size : int
        Plaintext bytes per chunk.
    plaintext_size : int
        Plaintext bytes in the file.

    """

    format_version: int
    key_source: KeySourceKind
    key_id: str
    scrypt: ScryptParams | None
    file_id: str
    chunk_size: int
    plaintext_size: int

    @property
    def chunk_count(self) -> int:
        """Number of chunks (at least one, even for empty plaintext)."""
        return max(1, -(-self.plaintext_size // self.chunk_size))

    @property
    def sealed_size(self) -> int:
        """Size in bytes the whole encrypted file must have."""
        overhead = self.chunk_count * (_NONCE_BYTES + _TAG_BYTES)
        return HEADER_BYTES + overhead + self.plaintext_size + _TRAILER_BYTES


@dataclass(frozen=True)
class _Envelope:
    """A parsed header: its public fields and the raw bytes needed to open it."""

    public: SealedHeader
    file_id: bytes
    salt: bytes
    signed: bytes
    mac: bytes


# ---------------------------------------------------------------- public API


def encrypt_file(
    src: Path, dst: Path, key: KeySource, *, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> None:
    """Encrypt the file ``src`` into the encrypted dataset file ``dst``.

    Parameters
    ----------
    src : Path
        Any file.
    dst : Path
        Destination (``.hfd``), written atomically with mode 0600; on any
        error nothing is left at ``dst``.
    key : DataKey or Passphrase
        The data key, or a passphrase to derive the file key from.
    chunk_size : int
        Plaintext bytes per chunk.

    Raises
    ------
    DataError
        If ``src`` cannot be read.
    ConfigError
        If ``dst``'s directory does not exist.

    """
    _check_destination(dst)
    try:
        plaintext = src.read_bytes()
    except FileNotFoundError:
        raise DataError(f"cannot encrypt {src}: file not found") from None
    except OSError as error:
        raise DataError(f"cannot encrypt {src}: {error.strerror}") from None
    _write_sealed(dst, _seal(plaintext, key, chunk_size=chunk_size))


def write_encrypted_frame(
    frame: pd.DataFrame,
    dst: Path,
    key: KeySource,
    *,
    metadata: Mapping[str, str] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> None:
    """Store a frame as Parquet, encrypted, in ``dst``; no plaintext touches disk.

    Parameters
    ----------
    frame : pandas.DataFrame
        The data; dtypes, column order and index are kept.
    dst : Path
        Destination (``.hfd``), written atomically with mode 0600; on any
        error nothing is left at ``dst``.
    key : DataKey or Passphrase
        The data key, or a passphrase to derive the file key from.
    metadata : mapping of str to str, optional
        Stored as Parquet key-value metadata, so encrypted too.
    chunk_size : int
        Plaintext bytes per chunk.

    Raises
    ------
    DataError
        If a column cannot be stored as Parquet.
    ConfigError
        If ``dst``'s directory does not exist.

    """
    _check_destination(dst)
    parquet = _frame_to_parquet(frame, dict(metadata or {}))
    _write_sealed(dst, _seal(parquet, key, chunk_size=chunk_size))


def open_encrypted(path: Path, key: KeySource) -> bytes:
    """Decrypt a whole encrypted file in memory.

    Parameters
    ----------
    path : Path
        An encrypted dataset file.
    key : DataKey or Passphrase
        The key or passphrase it was encrypted with.

    Returns
    -------
    bytes
        The plaintext, only once every chunk has been authenticated.

    Raises
    ------
    DecryptionError
        If the file is missing, not a hospfed file, of an unsupported
        version, encrypted with another key or passphrase, altered,
        truncated, reordered, or has a header from another file; the message
        says which.

    """
    return bytes(_unseal(_read_sealed(path), key, origin=str(path)))


def read_encrypted_frame(
    path: Path, key: KeySource
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Decrypt a file written by :func:`write_encrypted_frame`, in memory.

    Parameters
    ----------
    path : Path
        An encrypted dataset file.
    key : DataKey or Passphrase
        The key or passphrase it was encrypted with.

    Returns
    -------
    frame : pandas.DataFrame
        The frame exactly as written (dtypes, column order, index).
    metadata : dict of str to str
        The metadata written with it.

    Raises
    ------
    DecryptionError
        As :func:`open_encrypted`, or if the plaintext is not a Parquet table.

    """
    plaintext = _unseal(_read_sealed(path), key, origin=str(path))
    try:
        table = pq.read_table(pa.BufferReader(pa.py_buffer(plaintext)))
    except pa.ArrowException:
        raise DecryptionError(
            f"{path} decrypted, but it does not hold a Parquet table "
            "(use open_encrypted for files made by encrypt_file)"
        ) from None
    metadata = _decode_metadata(table.schema.metadata, origin=str(path))
    return _restore_string_storage(table), metadata


def _restore_string_storage(table: pa.Table) -> pd.DataFrame:
    """Give string columns back their pandas storage (Parquet keeps only "string")."""
    frame = table.to_pandas()
    stored = (table.schema.metadata or {}).get(_STORAGE_KEY)
    for name in json.loads(stored) if stored else []:
        frame[name] = frame[name].astype(pd.StringDtype("pyarrow"))
    return frame


def read_header(path: Path) -> SealedHeader:
    """Read the public header of an encrypted file; no key needed.

    Parameters
    ----------
    path : Path
        An encrypted dataset file.

    Returns
    -------
    SealedHeader
        Format version, key source and id, scrypt parameters, chunking.

    Raises
    ------
    DecryptionError
        If the file is missing, not a hospfed file, of an unsupported
        version, or its header is incomplete or invalid.

    """
    try:
        with path.open("rb") as handle:
            start = handle.read(HEADER_BYTES)
    except FileNotFoundError:
        raise DecryptionError(f"encrypted file {path} not found") from None
    return _parse_header(start, origin=str(path)).public


# ------------------------------------------------------------------ writing


def _check_destination(dst: Path) -> None:
    if not dst.parent.is_dir():
        raise ConfigError(f"cannot write {dst}: directory {dst.parent} does not exist")
    if dst.is_dir():
        raise ConfigError(f"cannot write {dst}: it is a directory")


def _write_sealed(dst: Path, sealed: bytearray) -> None:
    atomic_write(dst, bytes(sealed), mode=SEALED_FILE_MODE)


def _seal(plaintext: ByteData, key: KeySource, *, chunk_size: int) -> bytearray:
    """Turn plaintext into the bytes of an encrypted file (no disk access)."""
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be 1..{MAX_CHUNK_SIZE}, got {chunk_size}")
    plain = memoryview(plaintext).cast("B")
    file_id = os.urandom(_ID_BYTES)
    file_key, scrypt, salt = _writing_key(key)
    source: KeySourceKind = "key-file" if scrypt is None else "passphrase"
    public = SealedHeader(
        format_version=FORMAT_VERSION,
        key_source=source,
        key_id=file_key.key_id,
        scrypt=scrypt,
        file_id=file_id.hex(),
        chunk_size=chunk_size,
        plaintext_size=plain.nbytes,
    )
    out = bytearray(public.sealed_size)
    out[:HEADER_BYTES] = _pack_header(public, file_id, salt, file_key)
    _seal_chunks(plain, memoryview(out), public, file_id, file_key)
    out[-_TRAILER_BYTES:] = file_id + _trailer_mac(file_key, file_id)
    return out


def _writing_key(key: KeySource) -> tuple[DataKey, ScryptParams | None, bytes]:
    if isinstance(key, Passphrase):
        salt = os.urandom(_SALT_BYTES)
        params = ScryptParams()
        return derive_passphrase_key(key, salt=salt, params=params), params, salt
    return key, None, bytes(_SALT_BYTES)


def _pack_header(
    public: SealedHeader, file_id: bytes, salt: bytes, file_key: DataKey
) -> bytes:
    scrypt = public.scrypt
    n, r, p = (scrypt.n, scrypt.r, scrypt.p) if scrypt else (0, 0, 0)
    signed = _FIELDS.pack(
        MAGIC,
        public.format_version,
        _SOURCE_CODES[public.key_source],
        public.chunk_size,
        public.plaintext_size,
        file_id,
        bytes.fromhex(public.key_id),
        n,
        r,
        p,
        salt,
    )
    return signed + _header_mac(file_key, file_id, signed)


def _seal_chunks(
    plain: memoryview,
    out: memoryview,
    public: SealedHeader,
    file_id: bytes,
    file_key: DataKey,
) -> None:
    content = AESGCM(file_key.derive(_CONTENT, salt=file_id))
    last = public.chunk_count - 1
    for index, (start, size) in enumerate(_chunk_spans(public)):
        nonce = os.urandom(_NONCE_BYTES)
        body = start + _NONCE_BYTES
        out[start:body] = nonce
        offset = index * public.chunk_size
        content.encrypt_into(
            nonce,
            plain[offset : offset + size],
            _AAD.pack(file_id, index, index == last),
            out[body : body + size + _TAG_BYTES],
        )


def _chunk_spans(public: SealedHeader) -> list[tuple[int, int]]:
    """(offset in the file, plaintext size) of each chunk."""
    spans = []
    start = HEADER_BYTES
    remaining = public.plaintext_size
    for _ in range(public.chunk_count):
        size = min(public.chunk_size, remaining)
        spans.append((start, size))
        start += _NONCE_BYTES + size + _TAG_BYTES
        remaining -= size
    return spans


def _mac(file_key: DataKey, purpose: str, file_id: bytes, data: bytes) -> hmac.HMAC:
    """HMAC-SHA256 of ``data`` under a per-file subkey for ``purpose``."""
    mac = hmac.HMAC(file_key.derive(purpose, salt=file_id), hashes.SHA256())
    mac.update(data)
    return mac


def _header_mac(file_key: DataKey, file_id: bytes, signed: bytes) -> bytes:
    return _mac(file_key, _HEADER_MAC, file_id, signed).finalize()


def _trailer_mac(file_key: DataKey, file_id: bytes) -> bytes:
    return _mac(file_key, _TRAILER_MAC, file_id, file_id).finalize()


def _frame_to_parquet(frame: pd.DataFrame, metadata: dict[str, str]) -> memoryview:
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError("metadata must map str to str")
    try:
        table = pa.Table.from_pandas(frame)
    except (pa.ArrowException, TypeError, ValueError):
        raise _unstorable_column(frame) from None
    encoded = json.dumps(metadata, sort_keys=True).encode("utf-8")
    arrow_strings = [
        str(name)
        for name, dtype in frame.dtypes.items()
        if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"
    ]
    schema_metadata = {
        **(table.schema.metadata or {}),
        _METADATA_KEY: encoded,
        _STORAGE_KEY: json.dumps(arrow_strings).encode("utf-8"),
    }
    sink = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata(schema_metadata), sink)
    return memoryview(sink.getvalue())


def _unstorable_column(frame: pd.DataFrame) -> DataError:
    """Name the column pyarrow refused, without quoting any of its values."""
    for name in frame.columns:
        try:
            pa.Array.from_pandas(frame[name])
        except (pa.ArrowException, TypeError, ValueError):
            return DataError(
                f"column {name!r} (dtype {frame[name].dtype}) cannot be stored as "
                "Parquet: it mixes value types; make the column one type"
            )
    return DataError("the frame cannot be stored as Parquet (check its index)")


# ------------------------------------------------------------------ reading


def _read_sealed(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DecryptionError(f"encrypted file {path} not found") from None
    except OSError as error:
        raise DecryptionError(f"cannot read {path}: {error.strerror}") from None


def _unseal(sealed: bytes, key: KeySource, *, origin: str) -> bytearray:
    """Check and decrypt the bytes of an encrypted file, in memory."""
    envelope = _parse_header(sealed, origin=origin)
    file_key = _reading_key(envelope.public, envelope.salt, key, origin=origin)
    _verify_header(envelope, file_key, origin=origin)
    _verify_layout(sealed, envelope, file_key, origin=origin)
    return _open_chunks(memoryview(sealed), envelope, file_key, origin=origin)


def _parse_header(data: bytes, *, origin: str) -> _Envelope:
    if len(data) < _PREFIX.size or not data.startswith(MAGIC):
        raise DecryptionError(
            f"{origin} is not a hospfed encrypted file (bad magic); "
            "check that you gave the .hfd file"
        )
    (_, version) = _PREFIX.unpack_from(data)
    if version != FORMAT_VERSION:
        raise DecryptionError(
            f"{origin} uses unsupported format version {version} (this hospfed "
            f"reads version {FORMAT_VERSION}); upgrade hospfed"
        )
    if len(data) < HEADER_BYTES:
        raise DecryptionError(f"{origin} is truncated: it ends inside its header")
    return _envelope(data, origin=origin)


def _envelope(data: bytes, *, origin: str) -> _Envelope:
    fields = _FIELDS.unpack_from(data)
    (_, version, code, chunk_size, size, file_id, key_id, n, r, p, salt) = fields
    kind = _SOURCE_KINDS.get(code)
    if kind is None or not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise DecryptionError(
            f"{origin} has a corrupt header (key source {code}, chunk size "
            f"{chunk_size}); the file was altered or damaged"
        )
    public = SealedHeader(
        format_version=version,
        key_source=kind,
        key_id=key_id.hex(),
        scrypt=_header_scrypt(kind, (n, r, p), salt, origin=origin),
        file_id=file_id.hex(),
        chunk_size=chunk_size,
        plaintext_size=size,
    )
    signed = data[: _FIELDS.size]
    mac = data[_FIELDS.size : HEADER_BYTES]
    return _Envelope(public, file_id, salt, bytes(signed), bytes(mac))


def _header_scrypt(
    kind: KeySourceKind, nrp: tuple[int, int, int], salt: bytes, *, origin: str
) -> ScryptParams | None:
    if kind == "key-file":
        if any(nrp) or any(salt):
            raise DecryptionError(
                f"{origin} has a corrupt header (scrypt fields set on a file "
                "encrypted with a key file); the file was altered or damaged"
            )
        return None
    try:
        n, r, p = nrp
        return ScryptParams(n=n, r=r, p=p)
    except KeyFileError as error:
        raise DecryptionError(
            f"{origin}: refusing the header's {error}; the file was altered or "
            "made by an incompatible tool"
        ) from None


def _reading_key(
    public: SealedHeader, salt: bytes, key: KeySource, *, origin: str
) -> DataKey:
    if isinstance(key, Passphrase):
        if public.scrypt is None:
            raise DecryptionError(
                f"{origin} was encrypted with a key file (key id {public.key_id}), "
                "not a passphrase; give that key file"
            )
        file_key = derive_passphrase_key(key, salt=salt, params=public.scrypt)
        if file_key.key_id != public.key_id:
            raise DecryptionError(
                f"{origin}: wrong passphrase (it does not match the one this file "
                "was encrypted with); check for a typo"
            )
        return file_key
    if public.scrypt is not None:
        raise DecryptionError(
            f"{origin} was encrypted with a passphrase, not a key file; "
            "give the passphrase"
        )
    if key.key_id != public.key_id:
        raise DecryptionError(
            f"{origin}: wrong key: this file was encrypted with key id "
            f"{public.key_id}, the key given is {key.key_id}"
        )
    return key


def _verify_header(envelope: _Envelope, file_key: DataKey, *, origin: str) -> None:
    mac = _mac(file_key, _HEADER_MAC, envelope.file_id, envelope.signed)
    try:
        mac.verify(envelope.mac)
    except InvalidSignature:
        raise DecryptionError(
            f"{origin}: the header was altered (its MAC does not match); "
            "the file cannot be trusted, restore it from a backup"
        ) from None


def _verify_layout(
    sealed: bytes, envelope: _Envelope, file_key: DataKey, *, origin: str
) -> None:
    whole = len(sealed) >= HEADER_BYTES + _TRAILER_BYTES
    trailer = sealed[-_TRAILER_BYTES:] if whole else b""
    trailer_id = trailer[:_ID_BYTES]
    genuine = _trailer_genuine(file_key, trailer_id, trailer[_ID_BYTES:])
    if genuine and trailer_id != envelope.file_id:
        raise DecryptionError(
            f"{origin}: the header belongs to another file (file id "
            f"{envelope.public.file_id}) than the contents (file id "
            f"{trailer_id.hex()}); it was grafted, restore the file from a backup"
        )
    _check_length(len(sealed), envelope.public, origin=origin)
    if not genuine:
        raise DecryptionError(
            f"{origin}: the end-of-file marker was altered; the file cannot be "
            "trusted, restore it from a backup"
        )


def _check_length(length: int, public: SealedHeader, *, origin: str) -> None:
    expected = public.sealed_size
    if length < expected:
        raise DecryptionError(
            f"{origin} is truncated: {length} bytes where its header says "
            f"{expected}; {_where_cut(length, public)}"
        )
    if length > expected:
        raise DecryptionError(
            f"{origin} has {length - expected} unexpected bytes after its "
            "end; it was altered or concatenated with something"
        )


def _where_cut(length: int, public: SealedHeader) -> str:
    spans = _chunk_spans(public)
    for index, (start, size) in enumerate(spans):
        if start == length:
            return f"chunks {index} to {len(spans) - 1} (the final chunk) are missing"
        if start < length < start + _NONCE_BYTES + size + _TAG_BYTES:
            return f"it ends inside chunk {index} of {len(spans)}"
    return "its end-of-file marker is missing"


def _trailer_genuine(file_key: DataKey, file_id: bytes, mac: bytes) -> bool:
    if len(file_id) != _ID_BYTES:
        return False
    try:
        _mac(file_key, _TRAILER_MAC, file_id, file_id).verify(mac)
    except InvalidSignature:
        return False
    return True


def _open_chunks(
    sealed: memoryview, envelope: _Envelope, file_key: DataKey, *, origin: str
) -> bytearray:
    public, file_id = envelope.public, envelope.file_id
    content = AESGCM(file_key.derive(_CONTENT, salt=file_id))
    spans = _chunk_spans(public)
    plain = bytearray(public.plaintext_size)
    out = memoryview(plain)
    for index, (start, size) in enumerate(spans):
        nonce, body = _chunk_parts(sealed, start, size)
        offset = index * public.chunk_size
        aad = _AAD.pack(file_id, index, index == len(spans) - 1)
        try:
            content.decrypt_into(nonce, body, aad, out[offset : offset + size])
        except InvalidTag:
            raise _chunk_failure(
                content, sealed, spans, index, file_id, origin
            ) from None
    return plain


def _chunk_parts(sealed: memoryview, start: int, size: int) -> tuple[bytes, memoryview]:
    body = start + _NONCE_BYTES
    return bytes(sealed[start:body]), sealed[body : body + size + _TAG_BYTES]


def _chunk_failure(
    content: AESGCM,
    sealed: memoryview,
    spans: list[tuple[int, int]],
    index: int,
    file_id: bytes,
    origin: str,
) -> DecryptionError:
    """Say whether chunk ``index`` is another chunk moved, or just altered."""
    start, size = spans[index]
    nonce, body = _chunk_parts(sealed, start, size)
    for other, (_, other_size) in enumerate(spans):
        if other == index or other_size != size:
            continue
        aad = _AAD.pack(file_id, other, other == len(spans) - 1)
        try:
            content.decrypt(nonce, body, aad)
        except InvalidTag:
            continue
        return DecryptionError(
            f"{origin}: chunks were reordered (position {index} holds chunk "
            f"{other}); the file was altered, restore it from a backup"
        )
    return DecryptionError(
        f"{origin}: chunk {index} of {len(spans)} failed authentication: it was "
        "altered or is corrupt; restore the file from a backup"
    )


def _decode_metadata(
    schema_metadata: dict[bytes, bytes] | None, *, origin: str
) -> dict[str, str]:
    raw = (schema_metadata or {}).get(_METADATA_KEY)
    if raw is None:
        return {}
    try:
        decoded = json.loads(raw)
    except ValueError:
        decoded = None
    if not isinstance(decoded, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in decoded.items()
    ):
        raise DecryptionError(f"{origin}: its hospfed metadata is not a str map")
    return decoded
