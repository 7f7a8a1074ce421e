"""``prepare``: a raw hospital export in, one encrypted de-identified dataset out.

Each step is one function, in the order of the data path in
docs/architecture.md:
:func:`read_raw_export` (pandas and pyarrow, typed by the schema), the schema
contract check, Safe Harbor de-identification and the residual-identifier
scan (:func:`~hospfed.client.deid.deidentify_checked`, which fails closed),
then :func:`~hospfed.client.vault.write_encrypted_frame` (AES-256-GCM,
written atomically). Nothing is written unless every step succeeded, and no
plaintext ever touches the disk. The prepared file carries the schema it was
prepared under (its JSON and fingerprint) so that a training run can check
it agrees with the federation's schema before it trains.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
from pyarrow import csv as pa_csv

from hospfed.client.data import Meta
from hospfed.client.deid import DeidReport, DeidSecrets, deidentify_checked
from hospfed.client.vault import (
    DataKey,
    KeySource,
    Passphrase,
    ScryptParams,
    derive_passphrase_key,
    write_encrypted_frame,
)
from hospfed.common.errors import ConfigError, DataError
from hospfed.common.schema import DatasetSchema, dumps_schema

RAW_SUFFIXES = (".csv", ".parquet")

_CSV_BLOCK_BYTES = 16 << 20
"""Bytes of CSV each reader thread parses at a time: big blocks make few chunks
per column, and every Arrow kernel run over a column pays once per chunk."""

# A passphrase has no key file to derive pseudonym secrets from, and the
# encrypted file's own salt changes with every file; this fixed, public salt
# keeps a passphrase hospital's pseudonyms the same across exports.
_DEID_SALT = b"hospfed-deid-v1!"


@dataclass(frozen=True)
class PrepareResult:
    """What ``prepare`` did: the report and where the file went."""

    report: DeidReport
    out: Path
    schema: DatasetSchema


def deid_secrets(key: KeySource) -> DeidSecrets:
    """Derive the pseudonym and date-shift secrets from the hospital's key.

    HKDF-SHA256 subkeys of the data key (scrypt first, for a passphrase);
    never a plain hash of the values.
    """
    if isinstance(key, Passphrase):
        key = derive_passphrase_key(key, salt=_DEID_SALT, params=ScryptParams())
    assert isinstance(key, DataKey)
    return DeidSecrets(
        pseudonym=key.derive("deid/pseudonym"),
        date_shift=key.derive("deid/date-shift"),
    )


def read_raw_export(path: Path, schema: DatasetSchema) -> pd.DataFrame:
    """Read a raw export (CSV or Parquet) typed by ``schema``.

    Text and date columns are read as strings (MRNs and ZIP codes keep
    their leading zeros), numeric columns as numbers; only an empty field
    is missing.

    Raises
    ------
    DataError
        If the file is missing, has another suffix, or cannot be parsed.

    """
    if path.suffix.lower() not in RAW_SUFFIXES:
        raise ConfigError(
            f"raw export {path}: unsupported suffix {path.suffix!r}; "
            f"allowed: {', '.join(RAW_SUFFIXES)}"
        )
    if not path.is_file():
        raise DataError(f"raw export {path} does not exist")
    text = [c.name for c in schema.columns if c.kind in ("string", "date")]
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(text, pa.string()),
                null_values=[""],
                strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"raw export {path} cannot be read: {exc}") from None
    return table.to_pandas(types_mapper=_string_dtype)


def _string_dtype(arrow_type: pa.DataType) -> pd.StringDtype | None:
    return pd.StringDtype("pyarrow") if pa.types.is_string(arrow_type) else None


def prepare_export(
    raw: Path,
    out: Path,
    *,
    schema: DatasetSchema,
    key: KeySource,
    k: int | None = None,
) -> PrepareResult:
    """Run the whole prepare pipeline; write ``out`` only if every step passed.

    Parameters
    ----------
    raw : Path
        The raw export (CSV or Parquet).
    out : Path
        The encrypted dataset to write (``.hfd``).
    schema : DatasetSchema
        The raw export's contract (with its de-identification rules).
    key : DataKey or Passphrase
        The hospital's key.
    k : int, optional
        Suppress rows in quasi-identifier groups smaller than ``k``.

    Raises
    ------
    SchemaError
        If the export breaks the contract.
    IdentifierLeakError
        If anything identifier-like is left after de-identification.

    """
    # The raw frame is only referenced during de-identification: it is freed
    # before the prepared data is encoded and encrypted.
    clean, report = deidentify_checked(
        read_raw_export(raw, schema), schema, deid_secrets(key), k=k
    )
    clean.index = pd.RangeIndex(len(clean))  # rows in order; no copy of the data
    prepared = schema.deidentified()
    metadata = {
        Meta.SCHEMA: dumps_schema(prepared),
        Meta.FINGERPRINT: prepared.fingerprint(),
        Meta.PREPARED_AT: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        Meta.REPORT: json.dumps(asdict(report)),
        Meta.SOURCE: f"{schema.name} v{schema.version}",
    }
    write_encrypted_frame(clean, out, key, metadata=metadata)
    return PrepareResult(report, out, prepared)
