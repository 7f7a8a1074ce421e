"""The per-column actions: keyed pseudonyms, date offsets and shifts, 3-digit ZIPs.

This module owns what happens to the values of one identifier or date
column: :func:`keyed_digests` (HMAC-SHA256 under the hospital's secret, one
keyed template per column), :func:`pseudonymise` (each distinct value's
keyed pseudonym, written with the letters ``a``-``p``), :func:`date_offsets`
and :func:`_shifted` (each patient's secret date shift, so intervals within
a patient are kept), and :func:`zip3` (3-digit ZIP prefixes, ``000`` for the
restricted ones). Each works on a whole column or a block of its rows and
keeps missing values missing.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC

from hospfed.client.deid.settings import MAX_DATE_SHIFT_DAYS, RestrictedZip3
from hospfed.client.deid.textbuf import TEXT, Ints
from hospfed.common.errors import DataError
from hospfed.common.schema import (
    PSEUDONYM_LETTERS,
    PSEUDONYM_PREFIX,
    Column,
    parse_dates,
)


def keyed_digests(values: pa.Array, secret: bytes) -> bytes:
    """Return HMAC-SHA256(``secret``, value) of each value, concatenated.

    The HMAC is ``cryptography``'s: one keyed template is built, and each
    value is hashed on a copy of it, so the key schedule is computed once
    (about three times faster here than ``hmac.digest``, which looks the
    digest up again on every call).

    Parameters
    ----------
    values : pyarrow.Array
        Text values, none missing, UTF-8 encoded before hashing.
    secret : bytes
        The HMAC key.

    Returns
    -------
    bytes
        ``32 * len(values)`` bytes.

    """
    template = HMAC(secret, hashes.SHA256())
    copy = template.copy
    digests = bytearray()
    for value in values.cast(pa.large_binary()).to_pylist():
        mac = copy()
        mac.update(value)
        digests += mac.finalize()
    return bytes(digests)


_PSEUDONYM_ALPHABET = np.frombuffer(b"abcdefghijklmnop", dtype=np.uint8)


def pseudonymise(values: pa.Array, secret: bytes) -> pa.Array:
    """Replace each value by its keyed pseudonym; missing values stay missing.

    A pseudonym is :data:`~hospfed.common.schema.contract.PSEUDONYM_PREFIX` and the
    first 96 bits of HMAC-SHA256(``secret``, value) written with the letters
    ``a``-``p``: the same value and secret always give the same pseudonym,
    another secret gives an unrelated one, and without the secret it cannot
    be recomputed from a guessed value (as a plain hash could). Each distinct
    value is hashed once.

    Parameters
    ----------
    values : pyarrow.Array
        Text values.
    secret : bytes
        The hospital's pseudonym secret.

    Returns
    -------
    pyarrow.Array
        The pseudonyms, in the order of ``values``.

    """
    encoded = pc.dictionary_encode(values)
    digests = np.frombuffer(
        keyed_digests(encoded.dictionary, secret), dtype=np.uint8
    ).reshape(-1, 32)
    return _pseudonym_text(digests).take(encoded.indices)


def _pseudonym_text(digests: npt.NDArray[np.uint8]) -> pa.Array:
    count = len(digests)
    head = digests[:, : PSEUDONYM_LETTERS // 2]
    nibbles = np.stack([head >> 4, head & 0x0F], axis=2).reshape(
        count, PSEUDONYM_LETTERS
    )
    prefix = np.frombuffer(PSEUDONYM_PREFIX.encode(), dtype=np.uint8)
    chars = np.hstack(
        [np.broadcast_to(prefix, (count, prefix.size)), _PSEUDONYM_ALPHABET[nibbles]]
    )
    width = chars.shape[1]
    offsets = np.arange(count + 1, dtype=np.int64) * width
    return pa.LargeStringArray.from_buffers(
        count, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(chars))
    )


def date_offsets(keys: pa.Array, secret: bytes) -> Ints:
    """Return each patient's secret date offset in days (never 0).

    The offset is drawn from HMAC-SHA256(``secret``, patient key), uniformly
    from -:data:`MAX_DATE_SHIFT_DAYS` to -1 and 1 to
    :data:`MAX_DATE_SHIFT_DAYS`, so all dates of one patient move together
    and intervals between them are kept.

    Parameters
    ----------
    keys : pyarrow.Array
        Patient keys (raw, before pseudonymisation), none missing.
    secret : bytes
        The hospital's date-shift secret.

    Returns
    -------
    numpy.ndarray
        One offset per key.

    """
    encoded = pc.dictionary_encode(keys)
    digests = np.frombuffer(keyed_digests(encoded.dictionary, secret), dtype=np.uint8)
    draw = digests.reshape(-1, 32)[:, :8].copy().view("<u8").ravel()
    span = np.uint64(MAX_DATE_SHIFT_DAYS)
    days = (draw % span).astype(np.int64) + 1
    sign = np.where((draw // span) % np.uint64(2) == 0, 1, -1)
    per_key = days * sign
    return np.asarray(per_key[encoded.indices.to_numpy(zero_copy_only=False)], np.int64)


def _shifted(
    values: pd.Series, column: Column, keys: pa.Array, secret: bytes
) -> pd.Series:
    dates = parse_dates(values, column.effective_date_format)
    keyless = keys.is_null().to_numpy(zero_copy_only=False)
    orphan = keyless & dates.notna().to_numpy()
    if orphan.any():
        raise DataError(
            f"column {column.name!r}: {int(orphan.sum())} rows have a date to shift "
            "but no patient key; fill the key or drop those rows"
        )
    offsets = np.zeros(len(values), dtype=np.int64)
    if (~keyless).any():
        present = np.flatnonzero(~keyless)
        offsets[present] = date_offsets(keys.take(present), secret)
    return dates + pd.to_timedelta(offsets, unit="D")


def zip3(values: pa.Array, restricted: RestrictedZip3) -> tuple[pa.Array, int]:
    """Cut ZIP codes to 3 digits; restricted or malformed prefixes become ``000``.

    Parameters
    ----------
    values : pyarrow.Array
        ZIP codes as text; missing values stay missing.
    restricted : RestrictedZip3
        The prefixes that become ``000``.

    Returns
    -------
    zips : pyarrow.Array
        3-digit prefixes.
    count : int
        How many values became ``000``.

    """
    prefix = pc.utf8_slice_codeunits(values, 0, 3)
    well_formed = pc.match_substring_regex(prefix, "^[0-9]{3}$")
    banned = pc.is_in(prefix, value_set=pa.array(sorted(restricted.prefixes), TEXT))
    keep = pc.and_(well_formed, pc.invert(banned))
    zips = pc.if_else(keep, prefix, pa.scalar("000", TEXT))
    count = int(pc.sum(pc.invert(keep)).as_py() or 0)
    return zips, count
