"""The hospital's keys and its encrypted dataset format (``.hfd``).

- :mod:`~hospfed.client.vault.keys`: a random 256-bit data key in a 0600 key
  file, or a key derived from a passphrase (scrypt).
- :mod:`~hospfed.client.vault.layout`: the ``.hfd`` format on disk: an
  authenticated versioned header, AES-256-GCM chunks, an authenticated
  trailer; :func:`read_header` reads the public header.
- :mod:`~hospfed.client.vault.sealed`: the misuse-resistant calls for any
  bytes, :func:`encrypt_file` and :func:`open_encrypted`.
- :mod:`~hospfed.client.vault.frames`: pandas frames as encrypted Parquet,
  :func:`write_encrypted_frame` and :func:`read_encrypted_frame`.
Decryption happens in memory only: hospfed never writes plaintext data.
"""

from hospfed.client.vault.frames import read_encrypted_frame, write_encrypted_frame
from hospfed.client.vault.keys import (
    KEY_BYTES,
    KEY_ID_BYTES,
    PASSPHRASE_ENV,
    DataKey,
    KeySource,
    Passphrase,
    ScryptParams,
    check_one_key,
    derive_passphrase_key,
    generate_key_file,
    hospital_key,
    key_id_of,
    load_key,
    open_key_source,
)
from hospfed.client.vault.layout import (
    DEFAULT_CHUNK_SIZE,
    FORMAT_VERSION,
    HEADER_BYTES,
    MAGIC,
    SUFFIX,
    SealedHeader,
    read_header,
)
from hospfed.client.vault.sealed import encrypt_file, open_encrypted

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
    "check_one_key",
    "derive_passphrase_key",
    "encrypt_file",
    "generate_key_file",
    "hospital_key",
    "key_id_of",
    "load_key",
    "open_encrypted",
    "open_key_source",
    "read_encrypted_frame",
    "read_header",
    "write_encrypted_frame",
]
