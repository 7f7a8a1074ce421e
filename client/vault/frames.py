"""pandas frames in encrypted dataset files: Parquet inside the encryption.

This module owns how a frame becomes the plaintext of an ``.hfd`` file and
back: :func:`write_encrypted_frame` stores it as Parquet with hospfed's
key-value metadata and the list of ``string[pyarrow]`` columns in the Parquet
schema metadata (so both are encrypted too), refusing with the column's name
but none of its values a frame Parquet cannot store; and
:func:`read_encrypted_frame` decrypts it in memory and gives back the frame
exactly as written (dtypes including string storage, column order, index)
and its metadata. Sealing the bytes is :mod:`~hospfed.client.vault.sealed`'s;
no plaintext touches disk.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hospfed.client.vault.keys import KeySource
from hospfed.client.vault.layout import DEFAULT_CHUNK_SIZE
from hospfed.client.vault.sealed import check_destination, read_unsealed, write_sealed
from hospfed.common.errors import DataError, DecryptionError

_METADATA_KEY = b"hospfed.metadata"
_STORAGE_KEY = b"hospfed.pyarrow-strings"


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
    check_destination(dst)
    parquet = _frame_to_parquet(frame, dict(metadata or {}))
    write_sealed(dst, parquet, key, chunk_size=chunk_size)


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
        As :func:`~hospfed.client.vault.sealed.open_encrypted`, or if the
        plaintext is not a Parquet table.

    """
    plaintext = read_unsealed(path, key)
    try:
        table = pq.read_table(pa.BufferReader(pa.py_buffer(plaintext)))
    except pa.ArrowException:
        raise DecryptionError(
            f"{path} decrypted, but it does not hold a Parquet table "
            "(use open_encrypted for files made by encrypt_file)"
        ) from None
    metadata = _decode_metadata(table.schema.metadata, origin=str(path))
    return _restore_string_storage(table), metadata


# ------------------------------------------------------------------ writing


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


def _restore_string_storage(table: pa.Table) -> pd.DataFrame:
    """Give string columns back their pandas storage (Parquet keeps only "string")."""
    frame = table.to_pandas()
    stored = (table.schema.metadata or {}).get(_STORAGE_KEY)
    for name in json.loads(stored) if stored else []:
        frame[name] = frame[name].astype(pd.StringDtype("pyarrow"))
    return frame


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
