"""The hospital's keys and its encrypted dataset format (``.hfd``).

- :mod:`~hospfed.client.vault.keys`: a random 256-bit data key in a 0600 key
  file, or a key derived from a passphrase (scrypt).
- :mod:`~hospfed.client.vault.sealed`: the ``.hfd`` format: an authenticated
  versioned header, AES-256-GCM chunks, an authenticated trailer; the
  misuse-resistant calls :func:`encrypt_file`, :func:`open_encrypted`,
  :func:`write_encrypted_frame`, :func:`read_encrypted_frame`.
Decryption happens in memory only: hospfed never writes plaintext data.
"""

from hospfed.client.vault.keys import (
    KEY_BYTES,
    KEY_ID_BYTES,
    PASSPHRASE_ENV,
    DataKey,
    KeySource,
    Passphrase,
    ScryptParams,
    derive_passphrase_key,
    generate_key_file,
    key_id_of,
    load_key,
)
from hospfed.client.vault.sealed import (
    DEFAULT_CHUNK_SIZE,
    FORMAT_VERSION,
    HEADER_BYTES,
    MAGIC,
    SUFFIX,
    SealedHeader,
    encrypt_file,
    open_encrypted,
    read_encrypted_frame,
    read_header,
    write_encrypted_frame,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "FORMAT_VERSION",
    "HEADER_BYTES",
    "KEY_BYTES",
    "KEY_ID_BYTES",
    "MAGIC",
    "PASSPHRASE_ENV",
    "SUFFIX",
    "DataKey",
    "KeySource",
    "Passphrase",
    "ScryptParams",
    "SealedHeader",
    "derive_passphrase_key",
    "encrypt_file",
    "generate_key_file",
    "key_id_of",
    "load_key",
    "open_encrypted",
    "read_encrypted_frame",
    "read_header",
    "write_encrypted_frame",
]
