"""``prepare``: a raw hospital export in, one encrypted de-identified dataset out.

Each step is one function, in the order of the data path in
docs/architecture.md: the output is probed first (a file really created and
written next to it, :func:`check_output_writable`), then
:func:`~hospfed.client.raw.read_raw_export` (pyarrow, typed by the schema;
malformed files are refused naming the line and column, never a value), the
schema contract check, Safe Harbor de-identification and the
residual-identifier scan (:func:`~hospfed.client.deid.deidentify_checked`,
which fails closed), the row count (a dataset with fewer than ``min_rows``
rows, before or after k-anonymity, is refused), then
:func:`~hospfed.client.vault.write_encrypted_frame` (AES-256-GCM, written
atomically). Nothing is written unless every step succeeded, and no
plaintext ever touches the disk. The prepared file carries the schema it was
prepared under (its JSON and fingerprint) so that a training run can check
it agrees with the federation's schema before it trains.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from hospfed.client.data import Meta
from hospfed.client.deid import DeidReport, DeidSecrets, deidentify_checked
from hospfed.client.raw import RAW_SUFFIXES, locate_schema_error, read_raw_export
from hospfed.client.vault import (
    DataKey,
    KeySource,
    Passphrase,
    ScryptParams,
    derive_passphrase_key,
    write_encrypted_frame,
)
from hospfed.common.errors import ConfigError, DataError, SchemaError
from hospfed.common.schema import DatasetSchema, dumps_schema

__all__ = [
    "DEFAULT_MIN_ROWS",
    "RAW_SUFFIXES",
    "PrepareResult",
    "check_output_writable",
    "deid_secrets",
    "prepare_export",
    "read_raw_export",
]

DEFAULT_MIN_ROWS = 11
"""The fewest rows ``prepare`` writes unless told otherwise (``--min-rows``).

The training client sends the coordinator metrics computed on a third of a
hospital's rows; health statistics do not release counts of 10 or fewer
patients (the CMS cell-size suppression policy), so a dataset of 10 rows or
fewer is refused by default. It also catches the mistakes that leave almost
nothing: k-anonymity suppressing most rows, or the wrong (test) extract.
"""

_FIX_K = "generalise the quasi-identifiers or lower --k; nothing was written"

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


def prepare_export(
    raw: Path,
    out: Path,
    *,
    schema: DatasetSchema,
    key: KeySource,
    k: int | None = None,
    min_rows: int = DEFAULT_MIN_ROWS,
) -> PrepareResult:
    """Run the whole prepare pipeline; write ``out`` only if every step passed.

    Parameters
    ----------
    raw : Path
        The raw export (CSV or Parquet).
    out : Path
        The encrypted dataset to write (``.hfd``); its directory is probed
        (a file created, written and removed) before any other work.
    schema : DatasetSchema
        The raw export's contract (with its de-identification rules).
    key : DataKey or Passphrase
        The hospital's key.
    k : int, optional
        Suppress rows in quasi-identifier groups smaller than ``k`` (1: no
        check). Without it the data must be 5-anonymous over the
        quasi-identifiers, or nothing is written.
    min_rows : int
        The fewest rows to write (at least 1): an export with fewer rows,
        or fewer left after k-anonymity, is refused.

    Returns
    -------
    PrepareResult
        The de-identification report, ``out`` and the prepared schema.

    Raises
    ------
    ConfigError
        If ``out`` cannot be written or ``min_rows`` is below 1.
    DataError
        If the export is missing or malformed (naming the line and column,
        never a value), or has, or would keep, fewer than ``min_rows`` rows.
    SchemaError
        If the export breaks the contract (naming the first line that does).
    IdentifierLeakError
        If anything identifier-like is left after de-identification, a kept
        column looks like an identifier (unique per row, SSN/phone/ZIP/date
        shapes, ages over 89) without a reviewed reason, or, without ``k``,
        the data is not 5-anonymous. One line, no values.

    """
    if isinstance(min_rows, bool) or min_rows < 1:
        raise ConfigError(f"min_rows must be 1 or more, got {min_rows!r}")
    check_output_writable(out, raw=raw)
    frame = read_raw_export(raw, schema)
    if len(frame) < min_rows:
        raise DataError(
            f"raw export {raw} has {len(frame)} rows, fewer than the minimum of "
            f"{min_rows} (--min-rows): export all the rows (or lower --min-rows); "
            "nothing was written"
        )
    try:
        clean, report = deidentify_checked(frame, schema, deid_secrets(key), k=k)
    except SchemaError as error:
        raise locate_schema_error(raw, frame, schema, error) from None
    # The raw frame is freed before the prepared data is encoded and encrypted.
    del frame
    _check_rows_left(raw, report, k, min_rows)
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


def _check_rows_left(
    raw: Path, report: DeidReport, k: int | None, min_rows: int
) -> None:
    """Refuse a result with fewer than ``min_rows`` rows, saying why."""
    if report.rows_out >= min_rows:
        return
    if k is None:  # nothing suppressed: the rows in were already counted
        raise DataError(
            f"{raw}: {report.rows_out} rows left of {report.rows_in}, fewer than "
            f"the minimum of {min_rows} (--min-rows); nothing was written"
        )
    quasi = ", ".join(report.k_anonymity.quasi_identifiers) or "none"
    if report.rows_out == 0:
        raise DataError(
            f"k-anonymity with k={k} suppressed all {report.rows_in} rows of {raw} "
            f"(no combination of the quasi-identifiers {quasi} is shared by {k} "
            f"rows): {_FIX_K}"
        )
    raise DataError(
        f"k-anonymity with k={k} over the quasi-identifiers {quasi} left "
        f"{report.rows_out} of {report.rows_in} rows of {raw} "
        f"({report.rows_suppressed} suppressed), fewer than the minimum of "
        f"{min_rows} (--min-rows): {_FIX_K}"
    )


def check_output_writable(out: Path, *, raw: Path | None = None) -> None:
    """Check that ``out`` can be written by really writing a probe file beside it.

    A temporary file is created in ``out``'s directory (where the atomic
    write will put its own), written, synced and removed, so a read-only
    or pseudo file system, a missing directory or a full disk is found
    before any expensive work. ``out`` itself is not touched.

    Parameters
    ----------
    out : Path
        The file to be written.
    raw : Path, optional
        The input, which ``out`` must not be.

    Raises
    ------
    ConfigError
        Naming ``out`` and why it cannot be written.

    """
    if out.is_dir():
        raise ConfigError(
            f"cannot write {out}: it is a directory; give a file name such as "
            f"{out / 'site.hfd'}"
        )
    directory = out.parent
    if not directory.is_dir():
        raise ConfigError(
            f"cannot write {out}: directory {directory} does not exist; create it "
            "or choose another --out"
        )
    if raw is not None and out.exists() and raw.exists() and out.samefile(raw):
        raise ConfigError(f"cannot write {out}: it is the raw export; choose --out")
    try:
        fd, probe = tempfile.mkstemp(
            prefix=f".{out.name}.", suffix=".probe", dir=directory
        )
    except OSError as error:
        raise _unwritable(out, error) from None
    try:
        os.write(fd, b"hospfed write probe\n")
        os.fsync(fd)
    except OSError as error:
        raise _unwritable(out, error) from None
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(probe)


def _unwritable(out: Path, error: OSError) -> ConfigError:
    reason = error.strerror or type(error).__name__
    return ConfigError(
        f"cannot write {out}: {reason} (a probe file in {out.parent} could not be "
        "created and written); choose another --out"
    )
