"""The scrubber's tags, and the tag of a code or digit string by its shape.

This module owns :data:`TAGS` (what a removed chunk of free text becomes),
their codes, the Safe Harbor category each counts under
(:data:`TAG_CATEGORIES`) and the tag of a chunk of letters and digits by
its shape alone (:func:`_code_tags`: digit counts of SSNs and phone
numbers, dates in digits, IP addresses, e-mail and web addresses), used by
the allowlist rules of :mod:`.allowlist`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from hospfed.client.deid.textbuf import Bools, Ints

U8 = npt.NDArray[np.uint8]

TAGS = (
    "",
    "[NAME]",
    "[LOCATION]",
    "[DATE]",
    "[AGE>89]",
    "[PHONE]",
    "[EMAIL]",
    "[URL]",
    "[IP]",
    "[SSN]",
    "[ID]",
    "[REDACTED]",
)
"""The tags, by code (0: the chunk is kept). ``[REDACTED]`` is a word on no
safe vocabulary that is on no name or place list either."""
(KEEP, T_NAME, T_LOCATION, T_DATE, T_AGE, T_PHONE, T_EMAIL, T_URL, T_IP, T_SSN) = range(
    10
)
T_ID, T_REDACTED = 10, 11

TAG_CATEGORIES: dict[str, str] = {
    "[NAME]": "name",
    "[LOCATION]": "geographic",
    "[DATE]": "date",
    "[AGE>89]": "age",
    "[PHONE]": "phone",
    "[EMAIL]": "email",
    "[URL]": "url",
    "[IP]": "ip",
    "[SSN]": "ssn",
    "[ID]": "other",
    "[REDACTED]": "other",
}
"""The Safe Harbor category each tag counts under in the report."""

_MONTHS_IN_CODES = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|年|月|日"
_DATE_DIGITS = (
    r"^(?:[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}"
    r"|[0-9]{1,2}[-/.][0-9]{1,2}[-/.](?:[0-9]{2}|[0-9]{4}))$"
)
_IP_DIGITS = r"^[0-9]{1,3}(?:\.[0-9]{1,3}){3}$"


def _np_bools(array: pa.Array) -> Bools:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False))


def _code_tags(words: pa.Array, digits: Ints) -> U8:
    """Tags of codes, digit strings and contacts, by their shape."""
    tags = np.full(len(words), T_ID, dtype=np.uint8)
    tags[digits == 9] = T_SSN
    tags[np.isin(digits, (7, 10, 11))] = T_PHONE
    for tag, regex in (
        (T_DATE, _DATE_DIGITS),
        (T_DATE, _MONTHS_IN_CODES),
        (T_IP, _IP_DIGITS),
        (T_IP, r"^[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}$"),
        (T_EMAIL, "@"),
        (T_URL, r"://|^www\."),
    ):
        tags[_np_bools(pc.match_substring_regex(words, regex))] = tag
    return tags


def _by_digits(digits: Ints) -> U8:
    tags = np.full(len(digits), T_ID, dtype=np.uint8)
    tags[digits == 9] = T_SSN
    tags[np.isin(digits, (7, 10, 11))] = T_PHONE
    return tags
