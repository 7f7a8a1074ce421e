"""The identifier patterns recognised in text, their tags, and which one a match is.

This module owns what an identifier looks like in free text: the RE2
patterns of :data:`IDENTIFIER_PATTERNS` in priority order (URL, email, IP,
street address, SSN, date, phone, age over 89, record number) and their
combination, the Safe Harbor categories the patterns cover
(:data:`_PATTERN_SHAPED`), the tags that replace identifiers (each
pattern's, and the ``[NAME]``/``[LOCATION]``/``[ID]`` tags of a row's own
values with their placeholder bytes), and the classification of the
matches of one combined RE2 pass back to the kind that made them
(:func:`_classify`), vectorised over Arrow buffers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hospfed.client.deid.textbuf import (
    _DIGIT,
    U8,
    Ints,
    _buffers,
    _char_classes,
    _per_value,
    _text_from,
)


@dataclass(frozen=True)
class IdentifierPattern:
    """A kind of identifier recognised in text.

    Attributes
    ----------
    kind : str
        Short name used in findings (``"phone"``).
    tag : str
        What a scrubbed match is replaced with (``"[PHONE]"``).
    regex : str
        RE2 regular expression.
    description : str
        What it is, for messages ("a phone number").

    """

    kind: str
    tag: str
    regex: str
    description: str


_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?"
    r"|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_DAY = r"(?:3[01]|[12][0-9]|0?[1-9])(?:st|nd|rd|th)?"
_OVER_89 = r"(?:9[0-9]|1[0-4][0-9])"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_STREET_SUFFIXES = (  # noqa: SIM905 (a list literal would take 80 lines)
    # USPS street suffixes (Publication 28, appendix C1): names, then the
    # common abbreviations.
    "alley avenue beach bend bluff bluffs bottom boulevard branch bridge brook "
    "brooks burg burgs bypass camp canyon cape causeway center centers circle "
    "circles cliff cliffs club common corner corners course court courts cove coves "
    "creek crescent crest crossing crossroad curve dale dam divide drive drives "
    "estate estates expressway extension extensions fall falls ferry field fields "
    "flat flats ford fords forest forge forges fork forks fort freeway garden "
    "gardens gateway glen glens green greens grove groves harbor harbors haven "
    "heights highway hill hills hollow inlet island islands isle junction junctions "
    "key keys knoll knolls lake lakes land landing lane light lights loaf lock locks "
    "lodge loop mall manor manors meadow meadows mews mill mills mission motorway "
    "mount mountain mountains neck orchard oval overpass park parks parkway "
    "parkways pass passage path pike pine pines place plain plains plaza point "
    "points port ports prairie radial ramp ranch rapid rapids rest ridge ridges "
    "river road roads route row rue run shoal shoals shore shores skyway spring "
    "springs spur spurs square squares station stravenue stream street streets "
    "summit terrace throughway trace track trafficway trail trailer tunnel turnpike "
    "underpass union unions valley valleys via viaduct view views village villages "
    "ville vista walk walks wall way ways well wells "
    "aly ave av blvd br brg byp cir ct cts cv crk cres xing dr est expy ext fwy "
    "gdns gtwy hbr hts hwy is jct ln mnr mdws mt mtn pkwy pl plz pt rd rdg rte sq "
    "st sta ter trl tpke vw vlg wy"
).split()
_STREET = (
    r"\b[0-9]{1,6}[A-Za-z]?\s+(?:[A-Za-z0-9][A-Za-z0-9'.-]*\s+){0,4}?"
    rf"(?i:{'|'.join(sorted(_STREET_SUFFIXES, key=len, reverse=True))})\b\.?"
    r"(?:,?\s*(?i:apt|apartment|suite|ste|unit|room|rm|floor|fl|#)\.?\s*#?\s*"
    r"[A-Za-z0-9-]+\b)?"
)

IDENTIFIER_PATTERNS: tuple[IdentifierPattern, ...] = (
    IdentifierPattern(
        "url",
        "[URL]",
        r"(?i:\b(?:(?:https?|ftp)://|www\.)[^\s<>\"']+)",
        "a web address",
    ),
    IdentifierPattern(
        "email",
        "[EMAIL]",
        # The local part may hold a row's own name, already replaced by a tag
        # or by its placeholder bytes (see _PLACEHOLDERS).
        r"[A-Za-z0-9._%+\-\[\]\x01-\x03]+"
        r"@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}",
        "an email address",
    ),
    IdentifierPattern(
        "ipv4",
        "[IP]",
        rf"\b(?:{_OCTET}\.){{3}}{_OCTET}\b",
        "an IPv4 address",
    ),
    IdentifierPattern(
        "ipv6",
        "[IP]",
        r"(?i:\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b)",
        "an IPv6 address",
    ),
    IdentifierPattern(
        "address",
        "[ADDRESS]",
        _STREET,
        "a street address",
    ),
    IdentifierPattern(
        "ssn",
        "[SSN]",
        r"\b(?:[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9]{3} [0-9]{2} [0-9]{4}|[0-9]{9})\b",
        "a social security number",
    ),
    IdentifierPattern(
        "date",
        "[DATE]",
        r"\b[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}"
        r"|\b[0-9]{1,2}[-/.][0-9]{1,2}[-/.](?:[0-9]{4}|[0-9]{2})\b"
        rf"|(?i:\b{_MONTH}\b\.?\s+{_DAY}\b(?:,?\s+[0-9]{{4}}\b)?)"
        rf"|(?i:\b{_DAY}\s+(?:of\s+)?{_MONTH}\b\.?(?:,?\s+[0-9]{{4}}\b)?)"
        rf"|(?i:\b{_MONTH}\b\.?,?\s+[0-9]{{4}}\b)",
        "a date",
    ),
    IdentifierPattern(
        "phone",
        "[PHONE]",
        r"(?:\+?1[-. ]?|001[-. ]?)?\(?[0-9]{3}\)?[-. ]?[0-9]{3}[-. ]?[0-9]{4}"
        r"(?i:\s*(?:x|ext\.?)\s*[0-9]{1,6})?\b",
        "a phone number",
    ),
    IdentifierPattern(
        "age_over_89",
        "[AGE>89]",
        rf"(?i:\b{_OVER_89}\s*-?\s*(?:years?|yrs?)\s*-?\s*old\b"
        rf"|\b{_OVER_89}\s*-?\s*(?:y/?o|yo)\b"
        rf"|\bage[ds]?:?\s*{_OVER_89}\b)",
        "an age over 89",
    ),
    IdentifierPattern(
        "mrn",
        "[MRN]",
        r"[A-Za-z]{0,4}[#-]?[0-9]{5,}",
        "a record or account number (5 or more digits)",
    ),
)
"""Identifier patterns, by priority: where two match at one place, the first wins."""

_COMBINED = "|".join(f"(?:{p.regex})" for p in IDENTIFIER_PATTERNS)

_PATTERN_SHAPED = frozenset(
    (
        "phone",
        "fax",
        "email",
        "ssn",
        "mrn",
        "health_plan",
        "account",
        "url",
        "ip",
        "zip",
    )
)
"""Identifier categories whose values :data:`IDENTIFIER_PATTERNS` recognise."""

# --- tags ---------------------------------------------------------------------

_UNKNOWN_TAG = "[ID]"
_OWN_VALUE_TAGS = {"name": "[NAME]", "geographic": "[LOCATION]"}
"""The tag replacing a row's own value of each Safe Harbor category (else ``[ID]``)."""
_PLACEHOLDERS = {"[NAME]": 1, "[LOCATION]": 2, _UNKNOWN_TAG: 3}
"""The placeholder byte of each own-value tag (see :mod:`.scrub`, step 1)."""

TAG_CATEGORIES: dict[str, str] = {
    "[URL]": "url",
    "[EMAIL]": "email",
    "[IP]": "ip",
    "[ADDRESS]": "geographic",
    "[SSN]": "ssn",
    "[DATE]": "date",
    "[PHONE]": "phone",
    "[AGE>89]": "age",
    "[MRN]": "mrn",
    "[NAME]": "name",
    "[LOCATION]": "geographic",
    _UNKNOWN_TAG: "other",
}
"""The Safe Harbor category each tag counts under in the report."""

_KIND_TAGS: tuple[str, ...] = (
    *(p.tag for p in IDENTIFIER_PATTERNS),
    *_PLACEHOLDERS,
)
"""Tag of each kind of match: the patterns', then the placeholders' (the last
is the tag of a match no pattern claims)."""
_KIND = {p.kind: i for i, p in enumerate(IDENTIFIER_PATTERNS)}
_MAY_BE: dict[str, str] = {
    "url": "://|[Ww][Ww][Ww]\\.",
    "email": "@",
    "ipv4": "\\.",
    "ipv6": ":",
    "address": "^[0-9]{1,6}[A-Za-z]?\\s",
    "ssn": "^[0-9 -]+$",
    "date": "[-/.]|[A-Za-z]{3}",
    "phone": "^[+(0-9](?:[^0-9]*[0-9]){9}",
    "age_over_89": "^(?:[0-9]{2}|(?i:age).*[0-9]{2})",
    "mrn": "[0-9]{5}",
}
"""Quick necessary conditions: a match may be of a kind only if this matches."""

# --- which pattern a match is -------------------------------------------------

_LETTER_FLAG, _DIGIT_FLAG, _PLACEHOLDER_FLAG = 1, 2, 4


def _match_flag_table() -> U8:
    table = np.zeros(256, dtype=np.uint8)
    table[ord("a") : ord("z") + 1] = _LETTER_FLAG
    table[ord("A") : ord("Z") + 1] = _LETTER_FLAG
    table[ord("0") : ord("9") + 1] = _DIGIT_FLAG
    table[1 : len(_PLACEHOLDERS) + 1] = _PLACEHOLDER_FLAG
    return table


_MATCH_FLAGS = _match_flag_table()


def _classify(matches: pa.Array) -> Ints:
    """The kind (index into :data:`_KIND_TAGS`) of each match.

    A run of placeholders is of its tag; an all-digit match is told apart by
    length alone; other matches are of the first kind whose pattern they
    match in full (as the combined pattern chose it). Matches without
    letters are classified by shape (digits as ``9``): one of each shape is
    tried and the others follow it. For matches with letters, a quick test
    rules most kinds out before their pattern is tried. The tag is a label
    only: the match is removed whatever its kind.
    """
    kinds = np.full(len(matches), len(_KIND_TAGS) - 1, dtype=np.int64)
    offsets, data = _buffers(matches)
    flags = _MATCH_FLAGS[data]
    every = _per_value(np.bitwise_and, flags, offsets)
    lettered = (_per_value(np.bitwise_or, flags, offsets) & _LETTER_FLAG) != 0
    placeholder = np.flatnonzero(every & _PLACEHOLDER_FLAG)
    first = data[offsets[placeholder]].astype(np.int64)
    kinds[placeholder] = len(IDENTIFIER_PATTERNS) - 1 + first
    digits_only = (every & _DIGIT_FLAG) != 0
    if digits_only.any():
        kinds[digits_only] = _digit_kinds(matches.filter(pa.array(digits_only)))
    rest = ~digits_only
    rest[placeholder] = False
    shaped = np.flatnonzero(rest & ~lettered)
    if shaped.size:
        kinds[shaped] = _kinds_by_shape(matches.take(pa.array(shaped)))
    worded = np.flatnonzero(rest & lettered)
    if worded.size:
        kinds[worded] = _kinds_with_letters(matches.take(pa.array(worded)))
    return kinds


_COMPILED = tuple(re.compile(p.regex) for p in IDENTIFIER_PATTERNS)


def _kinds_by_shape(matches: pa.Array) -> Ints:
    offsets, data = _buffers(matches)
    nines = np.where(_char_classes(data) == _DIGIT, np.uint8(ord("9")), data)
    shapes = pc.dictionary_encode(_text_from(offsets, nines, matches))
    codes = shapes.indices.to_numpy(zero_copy_only=False)
    _, first = np.unique(codes, return_index=True)
    examples = matches.take(pa.array(first)).to_pylist()
    kind_of_shape = np.array([_kind_of(text) for text in examples], dtype=np.int64)
    return np.asarray(kind_of_shape[codes], dtype=np.int64)


def _kind_of(text: str) -> int:
    for kind, pattern in enumerate(_COMPILED):
        if pattern.fullmatch(text):
            return kind
    return len(_KIND_TAGS) - 1


def _kinds_with_letters(matches: pa.Array) -> Ints:
    kinds = np.full(len(matches), len(_KIND_TAGS) - 1, dtype=np.int64)
    undecided = np.arange(len(matches))
    for kind, pattern in enumerate(IDENTIFIER_PATTERNS):
        if not undecided.size:
            break
        candidates = matches.take(pa.array(undecided))
        maybe = pc.match_substring_regex(candidates, _MAY_BE[pattern.kind]).to_numpy(
            zero_copy_only=False
        )
        if not maybe.any():
            continue
        chosen = undecided[maybe]
        full = pc.match_substring_regex(
            candidates.filter(pa.array(maybe)), f"^(?:{pattern.regex})$"
        ).to_numpy(zero_copy_only=False)
        kinds[chosen[full]] = kind
        undecided = np.setdiff1d(undecided, chosen[full], assume_unique=True)
    return kinds


def _digit_kinds(matches: pa.Array) -> Ints:
    """Kinds of all-digit matches: 9 digits an SSN, 10 a phone number, else a number.

    A phone number may also carry the country code: 11 digits from a 1, or
    13 from 001.
    """
    size = pc.utf8_length(matches).to_numpy(zero_copy_only=False)
    country_1 = pc.starts_with(matches, "1").to_numpy(zero_copy_only=False)
    country_001 = pc.starts_with(matches, "001").to_numpy(zero_copy_only=False)
    phone = (size == 10) | ((size == 11) & country_1) | ((size == 13) & country_001)
    kinds = np.full(len(matches), _KIND["mrn"], dtype=np.int64)
    kinds[phone] = _KIND["phone"]
    kinds[size == 9] = _KIND["ssn"]
    return kinds
