"""The independent residual check: plain Python over each distinct kept value.

This module owns :class:`ResidualScanner`, the second opinion on
de-identified data, built apart from the scrubber on purpose: it shares no
pattern, rule or code path with :mod:`.chunks`, :mod:`.allowlist` or
:mod:`.lexicon` (only the baked word lists of :mod:`.vocab`, which it reads
into Python sets), normalises text its own way (:func:`_normalised`, with
:mod:`unicodedata`) and reads it with the standard library's :mod:`re`. On
free text it looks for

- digit shapes: runs of digits joined by at most 3 characters of any
  Unicode class that is not a letter ("123 . 45 _ 6789", "555 - 1234"),
  7 digits or more together, or 5 in one run; 4 numbers joined by dots (IP);
  groups of hexadecimal digits and colons (IPv6, MAC addresses);
- contacts: ``@`` anywhere, "(at)", "[dot]", "dot com", "example.org",
  ``://`` and ``www``;
- dates: numbers in three parts, two numbers that could be a month and a
  day (unless a count follows: "3-4 times"), month names beside a day or a
  year, full month names, "May" and "March" capitalised inside a sentence,
  holidays, CJK dates, a year after "born" or "DOB";
- ages over 89 beside an age word, in digits or in words;
- PO boxes and rural-route boxes, "<Name> County", licence plates "ABC-123";
  a capitalised word left after "from", "lives in", "born in" ... before the next
  punctuation;
- a short capitalised word ("An [NAME]") or "South", "Port" ... before a
  removed name, a particle between two ("[NAME] de [NAME]");
- words: every word must be on the safe vocabulary, and a safe word that is
  also a name or place ("Will", "Mobile") must not be capitalised inside a
  sentence or follow a title; letters and digits together must be a safe
  code or a number with a unit (after an initial, "J. Do", a word does not
  begin a sentence).

On the other kept columns (strings, categories, numbers) it looks for the
same digit shapes, contacts, dates and ages, and for person and place names
that are not safe words; numbers of 7 digits or more are flagged. Each
check returns the first category found, never the value.
"""

from __future__ import annotations

import math
import re
import unicodedata
from functools import cache

from hospfed.client.deid.vocab import word_list

_TAG = re.compile(
    r"\[(?:NAME|LOCATION|DATE|AGE>89|PHONE|EMAIL|URL|IP|SSN|ID|REDACTED)\]"
)
_BESIDE_NAME = re.compile(
    r"\b([A-Z][a-z]{0,2})\s+\[NAME\]"  # "An [NAME]": a short name kept
    r"|(?<=\[NAME\] )(am|im|de|da|del|van|von|der|di|du|la|le|sur)(?= \[NAME\])"
    r"|\b(North|South|East|West|New|Port|Fort|Mount|Lake|San|Santa|Saint)"
    r"\s+\[(?:NAME|LOCATION)\]"
)
"""A short capitalised word before a removed name, a particle between two."""
_HOLE = "\u2591"
"""What a scrub tag becomes before the checks: a symbol that is no letter."""

_TLDS = "com|org|net|edu|gov|mil|io|info|biz|co\\.uk|us|uk"
_CONTACT = (
    ("email", re.compile(r"@")),
    ("email", re.compile(r"(?i)[(\[{<]\s*(?:at|dot)\s*[)\]}>]")),
    ("email", re.compile(rf"(?i)\bdot\s+(?:{_TLDS})\b")),
    ("url", re.compile(r"://|(?i:\bwww\b)")),
    ("url", re.compile(rf"(?i)\b[a-z0-9-]{{2,}}\.(?:{_TLDS})\b")),
)
_HEX = (
    ("ip", re.compile(r"(?i)\b[0-9a-f]{0,4}::[0-9a-f]{0,4}")),
    ("ip", re.compile(r"(?i)\b[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){3,}\b")),
    ("device", re.compile(r"(?i)\b[0-9a-f]{2}(?:[:-][0-9a-f]{2}){5}\b")),
)
_MONTH_NAMES = (
    "january|february|march|april|may|june|july|august|september|october|"
    "november|december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_ORDINALS = (
    "first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|"
    "twelfth|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|"
    "nineteenth|twentieth|thirtieth"
)
_COUNTS = frozenset(
    (  # noqa: SIM905 (a word list)
        "times time days day weeks week wks hours hrs hour minutes mins min "
        "months month mos years yrs episodes tablets tabs tab pills capsules caps "
        "doses mg mcg g kg ml l units u drinks cigarettes packs ppd cm mm beats "
        "bpm liters litres steps flights blocks miles km percent x"
    ).split()
)
_DATES = (
    re.compile(r"\b\d{1,4}\s?[^\w\s]\s?\d{1,2}\s?[^\w\s]\s?\d{1,4}\b"),
    re.compile(
        r"(?i)\b(?:january|february|april|june|july|august|september|"
        r"october|november|december)\b"
    ),
    re.compile(
        rf"(?i)\b(?:{_MONTH_NAMES})\b\.?[\s,/-]*(?:the\s+)?"
        r"(?:[12]?\d|3[01])(?:st|nd|rd|th)?\b(?![.:]\d)"
    ),
    re.compile(rf"(?i)\b(?:{_MONTH_NAMES})\b\.?[\s,/-]*(?:1[89]|20)\d\d\b"),
    re.compile(
        rf"(?i)\b(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?[\s,/-]*(?:of\s+)?"
        rf"(?:{_MONTH_NAMES})\b"
    ),
    re.compile(rf"(?i)\b(?:{_ORDINALS})\s+(?:of\s+)?(?:{_MONTH_NAMES})\b"),
    re.compile(
        r"(?i)\b(?:christmas|xmas|thanksgiving|easter|halloween|hanukkah|"
        r"chanukah|kwanzaa|passover|ramadan|diwali|juneteenth|kippur|hashanah)\b"
    ),
    re.compile(
        r"\b(?:New Year|Memorial Day|Labou?r Day|Independence Day|Veterans'? Day|"
        r"Valentine'?s Day|Mother'?s Day|Father'?s Day|Boxing Day|Good Friday)"
    ),
    re.compile(r"\d\s*[年月日]"),
    re.compile(r"(?i)\b(?:born|dob|birth)\W{0,3}(?:1[89]|20)\d\d\b"),
)
_PLACES_AND_PLATES = (
    ("location", re.compile(r"(?i)\bbox\s*#?\s*\d")),  # "PO Box 12", "RR 2 Box 4"
    ("location", re.compile(r"\b[A-Z][a-z]+\s+(?:County|Parish|Township|Borough)\b")),
    ("id", re.compile(r"\b[A-Z]{2,3}-\d{3,4}\b")),  # a licence plate "ABC-123"
)
_RESIDENCE = re.compile(
    r"(?i)\b(?:lives?|living|lived|resides?|residing|resident|residence|home|born|"
    r"moved|relocated|native|hometown|originally|grew\s+up)\s+"
    r"(?:in|at|to|of|near|from)\s+([^,.;:!?\n]*)|\bfrom\s+([^,.;:!?\n]*)"
)
"""A residence ("lives in ...") up to the next punctuation: no capital may stay."""
_TWO_PART = re.compile(
    r"(?<![\d/.-])(\d{1,2})([/-])(\d{1,2})(?![\d/.-])\s*([a-z]*)", re.I
)
_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|"
    "fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|"
    "fifty|sixty|seventy|eighty|ninety|hundred|and"
)
_AGES = (
    re.compile(
        r"(?i)\b(?:9\d|1[0-4]\d)\s*-?\s*(?:y/o|y\.o|yo|yrs?|years?|y|m|f|"
        r"male|female)\b"
    ),
    re.compile(r"(?i)\b(?:age|aged)\W{0,3}(?:9\d|1[0-4]\d)\b"),
    re.compile(
        rf"(?i)\b(?:ninety|hundred)(?:[\s-]+(?:{_NUMBER_WORDS}))*[\s-]+"
        r"(?:y/o|y\.o|yo|yrs?|years?)\b"
    ),
    re.compile(
        rf"(?i)\b(?:age|aged)\W{{0,3}}(?:(?:{_NUMBER_WORDS})[\s-]+)*"
        r"(?:ninety|hundred)\b"
    ),
)
_TITLES = frozenset(["dr", "mr", "mrs", "ms", "miss", "mx", "prof", "doctor"])
_EPONYM = frozenset(
    (  # noqa: SIM905 (a word list)
        "disease diseases syndrome syndromes sign signs palsy catheter criteria "
        "score scale test maneuver reflex phenomenon lymphoma sarcoma"
    ).split()
)
_UNITS = frozenset(
    (  # noqa: SIM905 (a word list)
        "mg mcg ug g kg gm gr ml cc l dl mmol umol meq mosm iu u unit units mmhg "
        "cmh2o bpm rpm mm cm km in ft lb lbs oz kcal cal sec secs s min mins hr "
        "hrs h d wk wks mo mos ng pg fl fmol nmol ms mv hz kpa atm mph x c f pct "
        "am pm st nd rd th yo y m yr yrs year years"
    ).split()
)
_AGE_SUFFIX = frozenset(["yo", "y", "m", "f", "yr", "yrs", "year", "years"])
_SENTENCE_ENDS = ".!?:;"


def _normalised(text: str) -> str:
    """NFKC; format characters dropped; spaces and dashes made plain."""
    text = unicodedata.normalize("NFKC", text)
    out = []
    for char in text:
        category = unicodedata.category(char)
        if category == "Cf":
            continue
        if char.isspace() or category in ("Zs", "Zl", "Zp", "Cc"):
            out.append(" ")
        elif category == "Pd" or char == "\u2212":
            out.append("-")
        else:
            out.append(char)
    return "".join(out)


class ResidualScanner:
    """Looks for identifiers left in de-identified values, one value at a time."""

    def __init__(self) -> None:
        self.safe = frozenset(word_list("safe_words"))
        self.names = frozenset(word_list("names"))
        self.places = frozenset(word_list("places"))

    def free_text(self, text: str) -> str | None:
        """The first kind of identifier found in scrubbed free text, if any."""
        text = _normalised(text)
        for match in _BESIDE_NAME.finditer(text):
            word = match[1] or match[2] or match[3]
            if word.lower() not in _TITLES and not _starts_sentence(
                text, match.start()
            ):
                return "name"
        plain = _TAG.sub(f" {_HOLE} ", text)
        return self._shapes(plain) or self._two_part_dates(plain) or self._words(plain)

    def value(self, text: str, *, names: bool = True) -> str | None:
        """The first kind of identifier found in a kept typed value, if any.

        With ``names=False`` (a column the schema marks ``reviewed``: its
        values were judged not to identify anyone, site or drug names say)
        person and place names are not flagged; digit shapes, contacts,
        dates and ages still are.
        """
        plain = _normalised(text)
        return self._shapes(plain) or (self._person_or_place(plain) if names else None)

    def number(self, value: float) -> str | None:
        """Whether a kept number looks like an identifier (7 digits or more)."""
        if math.isnan(value) or abs(value) < 1_000_000:
            return None
        return "number" if float(value).is_integer() else None

    def _shapes(self, text: str) -> str | None:
        for kind, pattern in _CONTACT + _HEX:
            if pattern.search(text):
                return kind
        found = _digit_groups(text)
        if found:
            return found
        for pattern in _DATES:
            if pattern.search(text):
                return "date"
        for pattern in _AGES:
            if pattern.search(text):
                return "age"
        for kind, pattern in _PLACES_AND_PLATES:
            if pattern.search(text):
                return kind
        return _residence(text)

    def _two_part_dates(self, text: str) -> str | None:
        for match in _TWO_PART.finditer(text):
            a, b = int(match[1]), int(match[3])
            plausible = (a <= 12 and b <= 31) or (a <= 31 and b <= 12)
            month_year = match[2] == "/" and 1 <= a <= 12
            if (plausible or month_year) and match[4].lower() not in _COUNTS:
                return "date"
        return None

    def _words(self, text: str) -> str | None:
        tokens = list(re.finditer(r"[^\W_]+", text))
        for index, match in enumerate(tokens):
            previous = ""
            if index and re.fullmatch(
                r"\.?\s*", text[tokens[index - 1].end() : match.start()]
            ):
                previous = tokens[index - 1][0].lower()
            kind = self._word_kind(
                text, match, match[0].lower(), previous, tokens, index
            )
            if kind:
                return kind
        return None

    def _word_kind(  # noqa: PLR0911
        self,
        text: str,
        match: re.Match[str],
        lower: str,
        previous: str,
        tokens: list[re.Match[str]],
        index: int,
    ) -> str | None:
        token = match[0]
        if not token.isascii():
            return "name"
        if previous in _TITLES and token.isalpha():
            return "name"
        if token.isdigit():
            return None
        if not token.isalpha():
            return self._code_kind(lower)
        if lower not in self.safe:
            return _list_kind(lower in self.names, lower in self.places)
        if lower in self.names or lower in self.places:
            following = tokens[index + 1][0].lower() if index + 1 < len(tokens) else ""
            if (
                token[0].isupper()
                and not _starts_sentence(text, match.start())
                and following not in _EPONYM
            ):
                return _list_kind(lower in self.names, lower in self.places)
        return None

    def _code_kind(self, lower: str) -> str | None:
        if lower in self.safe:
            return None
        number = re.fullmatch(r"(\d{1,4})([a-z%°]+)", lower)
        if number and number[2] in _UNITS:
            if number[2] in _AGE_SUFFIX and int(number[1]) >= 90:
                return "age"
            return None
        if re.fullmatch(r"x\d{1,2}", lower):
            return None
        return "id"

    def _person_or_place(self, text: str) -> str | None:
        words = re.findall(r"[^\W\d_]+", text)
        for word in words:
            lower = word.lower()
            if lower in self.safe or not word.isascii() or not word.istitle():
                continue
            if len(word) < 3:
                continue
            if lower in self.names:
                return "name"
            if lower in self.places:
                return "location"
        return None


def _list_kind(person: bool, place: bool) -> str:
    return "name" if person else "location" if place else "other"


def _residence(text: str) -> str | None:
    """Whether a capitalised word is left after "lives in", "from" ..."""
    for match in _RESIDENCE.finditer(text):
        run = match[1] or match[2] or ""
        if any(word[0].isupper() for word in re.findall(r"[^\W\d_]+", run)):
            return "location"
    return None


def _starts_sentence(text: str, at: int) -> bool:
    """Whether the word at ``at`` begins the text or a sentence."""
    before = text[:at].rstrip(" \"'([{")
    if re.search(r"(?:^|\s)[A-Z]\.$", before):
        return False  # after an initial: "J. Do"
    return not before or before[-1] in _SENTENCE_ENDS


def _digit_groups(text: str) -> str | None:
    """Runs of digits joined by up to 3 non-letters: 7 digits or 5 in one run."""
    runs = [(m.start(), m.end()) for m in re.finditer(r"\d+", text)]
    total, parts, dotted, last_end = 0, 0, True, None
    for start, end in runs:
        gap = None if last_end is None else text[last_end:start]
        joined = (
            gap is not None
            and 0 < len(gap) <= 3
            and not re.search(rf"[^\W_]|{_HOLE}", gap)
        )
        if not joined:
            total, parts, dotted = 0, 0, True
        else:
            dotted = dotted and gap == "."
        total += end - start
        parts += 1
        if end - start >= 5 or total >= 7:
            return _digit_kind(total)
        if parts == 4 and dotted:
            return "ip"
        last_end = end
    return None


def _digit_kind(digits: int) -> str:
    if digits == 9:
        return "ssn"
    return "phone" if digits in (7, 10, 11) else "number"


@cache
def scanner() -> ResidualScanner:
    """The scanner, built once per process."""
    return ResidualScanner()
