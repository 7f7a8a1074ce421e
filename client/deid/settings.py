"""The de-identification settings: the restricted ZIP list and the secrets.

This module owns the configuration a hospital passes to
:func:`~hospfed.client.deid.pipeline.deidentify`: the versioned list of
3-digit ZIP prefixes that Safe Harbor turns into ``000``
(:class:`RestrictedZip3`, :data:`RESTRICTED_ZIP3`, built from the table in
:mod:`hospfed.common.schema.safe_harbor`), the default k of k-anonymity
(:data:`DEFAULT_K`), the largest date shift
(:data:`MAX_DATE_SHIFT_DAYS`), and the keyed secrets of the pseudonyms and
date offsets (:class:`DeidSecrets`), which refuse to be too short and never
show in a ``repr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hospfed.common.errors import ConfigError
from hospfed.common.schema.safe_harbor import ZIP3_CENSUS_2000, ZIP3_CENSUS_2000_SOURCE


@dataclass(frozen=True)
class RestrictedZip3:
    """A versioned list of 3-digit ZIP prefixes that Safe Harbor turns into ``000``.

    Attributes
    ----------
    version : str
        Short name of the list, shown in reports (e.g. ``"census-2000"``).
    source : str
        Where the list comes from.
    prefixes : frozenset of str
        The restricted prefixes.

    """

    version: str
    source: str
    prefixes: frozenset[str]


SAFE_HARBOR_ZIP3_CENSUS_2000 = RestrictedZip3(
    version="census-2000",
    source=ZIP3_CENSUS_2000_SOURCE,
    prefixes=frozenset(ZIP3_CENSUS_2000),
)

RESTRICTED_ZIP3 = SAFE_HARBOR_ZIP3_CENSUS_2000
"""The list :func:`.deidentify` uses unless told otherwise.

Safe Harbor says to use the most recent Census data: when OCR publishes a
newer list, add it as a new :class:`RestrictedZip3` and point this at it.
"""

DEFAULT_K = 5
"""k-anonymity a prepare needs over the quasi-identifiers unless told otherwise.

With this default, rows in smaller groups fail the run (generalise the
quasi-identifiers in the schema); a ``k`` asked for explicitly suppresses
those rows instead. ``k = 1`` turns the check off.
"""

MAX_DATE_SHIFT_DAYS = 365
"""Shifted dates move by 1 to this many days, forwards or backwards."""

_MIN_SECRET_BYTES = 16


@dataclass(frozen=True)
class DeidSecrets:
    """The hospital's de-identification secrets (never shown by ``repr``).

    Derive both from the hospital's data key (HKDF in
    ``cryptography``); the same secrets give the same pseudonyms and date
    offsets, so a hospital's prepared datasets stay joinable.

    Parameters
    ----------
    pseudonym : bytes
        HMAC-SHA256 key of the pseudonyms, at least 16 bytes.
    date_shift : bytes
        HMAC-SHA256 key of the per-patient date offsets, at least 16 bytes.

    Raises
    ------
    ConfigError
        If a secret is too short.

    """

    pseudonym: bytes = field(repr=False)
    date_shift: bytes = field(repr=False)

    def __post_init__(self) -> None:
        for name in ("pseudonym", "date_shift"):
            secret = getattr(self, name)
            if not isinstance(secret, bytes) or len(secret) < _MIN_SECRET_BYTES:
                raise ConfigError(
                    f"the {name} secret must be at least {_MIN_SECRET_BYTES} bytes; "
                    "derive it from the hospital's data key"
                )
