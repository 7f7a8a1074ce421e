"""Sealing and unsealing bytes: encrypted dataset files (``.hfd``) for any data.

This module does the cryptographic work on the format that
:mod:`~hospfed.client.vault.layout` lays out: :func:`encrypt_file` and
:func:`open_encrypted` for any bytes, and under them the in-memory
:func:`_seal` and :func:`_unseal` (file key from a data key or a passphrase,
AES-256-GCM over each chunk with a fresh random nonce, header and trailer
MACs), atomic writes with mode 0600, and the diagnosis of a file that does
not open: wrong key or passphrase, altered or grafted header, truncation,
extra bytes, reordered or altered chunks, each with its own message. Callers
never see nonces, modes or subkeys, and decryption happens in memory only;
:mod:`~hospfed.client.vault.frames` stores pandas frames on top of it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeAlias

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hospfed.client.vault.keys import (
    DataKey,
    KeySource,
    Passphrase,
    ScryptParams,
    derive_passphrase_key,
)
from hospfed.client.vault.layout import (
    DEFAULT_CHUNK_SIZE,
    FORMAT_VERSION,
    HEADER_BYTES,
    ID_BYTES,
    MAX_CHUNK_SIZE,
    NONCE_BYTES,
    SALT_BYTES,
    TAG_BYTES,
    TRAILER_BYTES,
    Envelope,
    KeySourceKind,
    SealedHeader,
    chunk_aad,
    chunk_spans,
    content_cipher,
    pack_header,
    pack_trailer,
    parse_header,
    trailer_genuine,
    verify_header,
)
from hospfed.common.errors import ConfigError, DataError, DecryptionError
from hospfed.common.files import atomic_write

SEALED_FILE_MODE = 0o600

ByteData: TypeAlias = bytes | bytearray | memoryview


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
    check_destination(dst)
    try:
        plaintext = src.read_bytes()
    except FileNotFoundError:
        raise DataError(f"cannot encrypt {src}: file not found") from None
    except OSError as error:
        raise DataError(f"cannot encrypt {src}: {error.strerror}") from None
    write_sealed(dst, plaintext, key, chunk_size=chunk_size)


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
    return bytes(read_unsealed(path, key))


# ------------------------------------------------------------------ writing


def check_destination(dst: Path) -> None:
    """Refuse a destination whose directory is missing, or that is a directory."""
    if not dst.parent.is_dir():
        raise ConfigError(f"cannot write {dst}: directory {dst.parent} does not exist")
    if dst.is_dir():
        raise ConfigError(f"cannot write {dst}: it is a directory")


def write_sealed(
    dst: Path, plaintext: ByteData, key: KeySource, *, chunk_size: int
) -> None:
    """Seal ``plaintext`` and write it to ``dst`` atomically, mode 0600."""
    sealed = _seal(plaintext, key, chunk_size=chunk_size)
    atomic_write(dst, bytes(sealed), mode=SEALED_FILE_MODE)


def _seal(plaintext: ByteData, key: KeySource, *, chunk_size: int) -> bytearray:
    """Turn plaintext into the bytes of an encrypted file (no disk access)."""
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be 1..{MAX_CHUNK_SIZE}, got {chunk_size}")
    plain = memoryview(plaintext).cast("B")
    file_id = os.urandom(ID_BYTES)
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
    out[:HEADER_BYTES] = pack_header(public, file_id, salt, file_key)
    _seal_chunks(plain, memoryview(out), public, file_id, file_key)
    out[-TRAILER_BYTES:] = pack_trailer(file_key, file_id)
    return out


def _writing_key(key: KeySource) -> tuple[DataKey, ScryptParams | None, bytes]:
    if isinstance(key, Passphrase):
        salt = os.urandom(SALT_BYTES)
        params = ScryptParams()
        return derive_passphrase_key(key, salt=salt, params=params), params, salt
    return key, None, bytes(SALT_BYTES)


def _seal_chunks(
    plain: memoryview,
    out: memoryview,
    public: SealedHeader,
    file_id: bytes,
    file_key: DataKey,
) -> None:
    content = content_cipher(file_key, file_id)
    last = public.chunk_count - 1
    for index, (start, size) in enumerate(chunk_spans(public)):
        nonce = os.urandom(NONCE_BYTES)
        body = start + NONCE_BYTES
        out[start:body] = nonce
        offset = index * public.chunk_size
        content.encrypt_into(
            nonce,
            plain[offset : offset + size],
            chunk_aad(file_id, index, index == last),
            out[body : body + size + TAG_BYTES],
        )


# ------------------------------------------------------------------ reading


def read_unsealed(path: Path, key: KeySource) -> bytearray:
    """Read the encrypted file ``path`` and decrypt it in memory."""
    return _unseal(_read_sealed(path), key, origin=str(path))


def _read_sealed(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DecryptionError(f"encrypted file {path} not found") from None
    except OSError as error:
        raise DecryptionError(f"cannot read {path}: {error.strerror}") from None


def _unseal(sealed: bytes, key: KeySource, *, origin: str) -> bytearray:
    """Check and decrypt the bytes of an encrypted file, in memory."""
    envelope = parse_header(sealed, origin=origin)
    file_key = _reading_key(envelope.public, envelope.salt, key, origin=origin)
    verify_header(envelope, file_key, origin=origin)
    _verify_layout(sealed, envelope, file_key, origin=origin)
    return _open_chunks(memoryview(sealed), envelope, file_key, origin=origin)


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


def _verify_layout(
    sealed: bytes, envelope: Envelope, file_key: DataKey, *, origin: str
) -> None:
    whole = len(sealed) >= HEADER_BYTES + TRAILER_BYTES
    trailer = sealed[-TRAILER_BYTES:] if whole else b""
    trailer_id = trailer[:ID_BYTES]
    genuine = trailer_genuine(file_key, trailer_id, trailer[ID_BYTES:])
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
    spans = chunk_spans(public)
    for index, (start, size) in enumerate(spans):
        if start == length:
            return f"chunks {index} to {len(spans) - 1} (the final chunk) are missing"
        if start < length < start + NONCE_BYTES + size + TAG_BYTES:
            return f"it ends inside chunk {index} of {len(spans)}"
    return "its end-of-file marker is missing"


def _open_chunks(
    sealed: memoryview, envelope: Envelope, file_key: DataKey, *, origin: str
) -> bytearray:
    public, file_id = envelope.public, envelope.file_id
    content = content_cipher(file_key, file_id)
    spans = chunk_spans(public)
    plain = bytearray(public.plaintext_size)
    out = memoryview(plain)
    for index, (start, size) in enumerate(spans):
        nonce, body = _chunk_parts(sealed, start, size)
        offset = index * public.chunk_size
        aad = chunk_aad(file_id, index, index == len(spans) - 1)
        try:
            content.decrypt_into(nonce, body, aad, out[offset : offset + size])
        except InvalidTag:
            raise _chunk_failure(
                content, sealed, spans, index, file_id, origin
            ) from None
    return plain


def _chunk_parts(sealed: memoryview, start: int, size: int) -> tuple[bytes, memoryview]:
    body = start + NONCE_BYTES
    return bytes(sealed[start:body]), sealed[body : body + size + TAG_BYTES]


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
        aad = chunk_aad(file_id, other, other == len(spans) - 1)
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
