"""The on-disk layout of the encrypted dataset file (``.hfd``), version 1.

This module owns every byte-level decision of the format and nothing else:
the constants and sizes, the header struct and its packing and parsing into
:class:`SealedHeader`, the HKDF purposes of the per-file subkeys (content
key, header MAC, trailer MAC), the associated data bound to each chunk, the
authenticated trailer, and where each chunk lies (:func:`chunk_spans`). It
also reads the public header of a file (:func:`read_header`, no key needed).
Encrypting and decrypting chunks, and diagnosing a damaged file, are
:mod:`~hospfed.client.vault.sealed`'s; changing anything here makes a new
format version (and must fail the known-answer tests).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hospfed.client.vault.keys import KEY_ID_BYTES, DataKey, ScryptParams
from hospfed.common.errors import DecryptionError, KeyFileError

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

KeySourceKind = Literal["key-file", "passphrase"]

_SOURCE_CODES: dict[KeySourceKind, int] = {"key-file": 1, "passphrase": 2}
_SOURCE_KINDS = {code: kind for kind, code in _SOURCE_CODES.items()}
_PREFIX = struct.Struct("!8sH")
_FIELDS = struct.Struct(f"!8sHBIQ16s{KEY_ID_BYTES}sIII16s")
_AAD = struct.Struct("!16sQB")
ID_BYTES = 16
SALT_BYTES = 16
_MAC_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
HEADER_BYTES = _FIELDS.size + _MAC_BYTES
TRAILER_BYTES = ID_BYTES + _MAC_BYTES

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
        overhead = self.chunk_count * (NONCE_BYTES + TAG_BYTES)
        return HEADER_BYTES + overhead + self.plaintext_size + TRAILER_BYTES


@dataclass(frozen=True)
class Envelope:
    """A parsed header: its public fields and the raw bytes needed to open it."""

    public: SealedHeader
    file_id: bytes
    salt: bytes
    signed: bytes
    mac: bytes


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
    return parse_header(start, origin=str(path)).public


# ------------------------------------------------------------------- header


def pack_header(
    public: SealedHeader, file_id: bytes, salt: bytes, file_key: DataKey
) -> bytes:
    """The header bytes of a new file: its fields, then their MAC."""
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
    return signed + _mac(file_key, _HEADER_MAC, file_id, signed).finalize()


def parse_header(data: bytes, *, origin: str) -> Envelope:
    """Parse the header at the start of ``data``; its MAC is not checked yet."""
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


def _envelope(data: bytes, *, origin: str) -> Envelope:
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
    return Envelope(public, file_id, salt, bytes(signed), bytes(mac))


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


def verify_header(envelope: Envelope, file_key: DataKey, *, origin: str) -> None:
    """Check the header's MAC under ``file_key``."""
    mac = _mac(file_key, _HEADER_MAC, envelope.file_id, envelope.signed)
    try:
        mac.verify(envelope.mac)
    except InvalidSignature:
        raise DecryptionError(
            f"{origin}: the header was altered (its MAC does not match); "
            "the file cannot be trusted, restore it from a backup"
        ) from None


# ------------------------------------------------------- chunks and trailer


def content_cipher(file_key: DataKey, file_id: bytes) -> AESGCM:
    """The AES-256-GCM cipher of this file's chunks (its own HKDF subkey)."""
    return AESGCM(file_key.derive(_CONTENT, salt=file_id))


def chunk_aad(file_id: bytes, index: int, final: bool) -> bytes:
    """Associated data of chunk ``index``: file id, index, final flag."""
    return _AAD.pack(file_id, index, final)


def chunk_spans(public: SealedHeader) -> list[tuple[int, int]]:
    """(offset in the file, plaintext size) of each chunk."""
    spans = []
    start = HEADER_BYTES
    remaining = public.plaintext_size
    for _ in range(public.chunk_count):
        size = min(public.chunk_size, remaining)
        spans.append((start, size))
        start += NONCE_BYTES + size + TAG_BYTES
        remaining -= size
    return spans


def pack_trailer(file_key: DataKey, file_id: bytes) -> bytes:
    """The trailer bytes: the file id, then its MAC."""
    return file_id + _mac(file_key, _TRAILER_MAC, file_id, file_id).finalize()


def trailer_genuine(file_key: DataKey, file_id: bytes, mac: bytes) -> bool:
    """Whether ``mac`` is the trailer MAC of ``file_id`` under ``file_key``."""
    if len(file_id) != ID_BYTES:
        return False
    try:
        _mac(file_key, _TRAILER_MAC, file_id, file_id).verify(mac)
    except InvalidSignature:
        return False
    return True


def _mac(file_key: DataKey, purpose: str, file_id: bytes, data: bytes) -> hmac.HMAC:
    """HMAC-SHA256 of ``data`` under a per-file subkey for ``purpose``."""
    mac = hmac.HMAC(file_key.derive(purpose, salt=file_id), hashes.SHA256())
    mac.update(data)
    return mac
