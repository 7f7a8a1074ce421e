"""The scrubber's lexicon: every known word with its classes, for one Arrow lookup.

This module owns what the allowlist scrubber (:mod:`.allowlist`) knows about
a word: the baked lists of :mod:`.vocab` (safe words, person names, places)
and the small hand-made classes its context rules need (month names,
titles, age words, street suffixes, number words ...), merged into one
sorted Arrow array of words with a bit mask of classes each
(:class:`Lexicon`), so that a block's words are classified by one binary
search (``pyarrow.compute.search_sorted``). The residual check
(:mod:`~hospfed.client.deid.scan`) reads the same baked lists through its
own Python sets and keeps its own hand-made lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from hospfed.client.deid.textbuf import TEXT
from hospfed.client.deid.vocab import word_list

U32 = npt.NDArray[np.uint32]

# Word classes, one bit each.
SAFE = 1 << 0  # on the safe vocabulary
NAME = 1 << 1  # on a person-name list
PLACE = 1 << 2  # on a place list
MONTH = 1 << 3  # a month name that is nothing else: always a date
MONTH_WORD = 1 << 4  # "may", "march": a date only in context
MONTH_ABBR = 1 << 5  # "jan", "dec" ...: a date next to a number
TITLE = 1 << 6  # "dr", "mrs" ...: the next word is a name
HOLIDAY = 1 << 7  # "christmas" ...: a date
HOLIDAY_HEAD = 1 << 8  # "memorial" (day), "new" (year) ...: a date before DAY
DAY = 1 << 9  # "day", "year", "years", "eve", "friday"
AGE_AFTER = 1 << 10  # "years", "yo" ...: an age after a number
AGE_BEFORE = 1 << 11  # "age", "aged"
STREET = 1 << 12  # a street suffix: "street", "ave" ...
UNIT = 1 << 13  # "apt", "suite", "unit" ...: part of an address after a street
BOX = 1 << 14  # "box", "route", "rr", "po": rural routes and PO boxes
NUMBER_WORD = 1 << 15  # "one" ... "ninety", "hundred", "and"
OVER_89_WORD = 1 << 16  # "ninety", "hundred"
ORDINAL_WORD = 1 << 17  # "first" ... "thirty"
TLD = 1 << 18  # "com", "org" ...: a domain after "dot"
AT_DOT = 1 << 19  # "at", "dot": an obfuscated e-mail between redacted words
EXTENSION = 1 << 20  # "ext", "extension", "x": the next number is a phone's
BIRTH = 1 << 21  # "born", "dob", "birth": the next year is a date
COUNT_WORD = 1 << 22  # "times", "days", "mg" ...: a range "3-4" before it
EPONYM_HEAD = 1 << 23  # "disease", "syndrome" ...: a capitalised name before it
OF_THE = 1 << 24  # "of", "the", "on": may stand inside a written date
PLACE_HEAD = 1 << 25  # "county", "hospital" ...: a capitalised word before is a place
HANDLE_HEAD = 1 << 26  # "instagram", "twitter" ...: the next word is a handle
PLACE_PREFIX = 1 << 27  # "new", "port", "south" ...: a place before a removed name
RELATIVE = 1 << 28  # "wife", "son" ...: a capitalised word after is a name
PARTICLE = 1 << 29  # "de", "van" ...: a capitalised word after a removed name is one
RESIDE = 1 << 30  # "lives", "born" ...: with IN_AT, the capitalised run after: a place
IN_AT = 1 << 31  # "in", "at", "to" ...: the preposition of a residence


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_MONTHS = _words(
    "january february april june july august september october november december"
)
_CLASSES: dict[int, tuple[str, ...]] = {
    MONTH: _MONTHS,
    MONTH_WORD: ("may", "march"),
    MONTH_ABBR: _words("jan feb mar apr jun jul aug sep sept oct nov dec"),
    TITLE: _words(
        "dr mr mrs ms miss mx prof doctor sr sra mme mlle herr frau dra nurse "
        "attending nok"
    ),
    HOLIDAY: _words(
        "christmas xmas thanksgiving easter halloween hanukkah chanukah kwanzaa "
        "passover ramadan diwali juneteenth kippur hashanah eid nowruz purim "
        "pentecost epiphany"
    ),
    HOLIDAY_HEAD: _words(
        "new memorial labor labour independence veterans valentine valentines "
        "mother mothers father fathers boxing presidents columbus patriots "
        "good ash palm victoria canada bastille remembrance armistice"
    ),
    DAY: _words("day year years eve friday sunday monday"),
    AGE_AFTER: _words("years year yrs yr yo y old years-old year-old yr-old y/o y.o"),
    AGE_BEFORE: _words("age aged ages"),
    STREET: _words(
        "street st avenue ave av road rd boulevard blvd lane ln drive dr court ct "
        "place pl terrace ter way circle cir parkway pkwy highway hwy square sq "
        "trail trl crescent close alley aly plaza plz row pike turnpike tpke "
        "expressway expy freeway fwy loop path walk run crossing xing"
    ),
    UNIT: _words("apt apartment suite ste unit room rm floor fl bldg building #"),
    BOX: _words("box route rr rte po pob p.o r.r highway hwy interstate"),
    NUMBER_WORD: _words(
        "one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty "
        "fifty sixty seventy eighty ninety hundred and"
    ),
    OVER_89_WORD: ("ninety", "hundred"),
    ORDINAL_WORD: _words(
        "first second third fourth fifth sixth seventh eighth ninth tenth "
        "eleventh twelfth thirteenth fourteenth fifteenth sixteenth seventeenth "
        "eighteenth nineteenth twentieth thirtieth"
    ),
    TLD: _words(
        "com org net edu gov mil int io co uk us ca au de fr nl es it jp cn in br "
        "ru ch se no dk fi be at ie nz za mx info biz me tv ly app dev"
    ),
    AT_DOT: _words("at dot"),
    EXTENSION: _words("ext extn extension x"),
    BIRTH: _words("born dob birth birthday b"),
    COUNT_WORD: _words(
        "times time days day weeks week wks hours hrs hour minutes mins min months "
        "month mos years yrs episodes tablets tabs tab pills capsules caps doses "
        "mg mcg g kg ml l units u drinks cigarettes packs ppd cm mm beats bpm "
        "liters litres steps flights blocks miles km percent x"
    ),
    EPONYM_HEAD: _words(
        "disease diseases syndrome syndromes sign signs palsy catheter criteria "
        "score scale test maneuver reflex phenomenon lymphoma sarcoma"
    ),
    OF_THE: _words("of the on"),
    PLACE_HEAD: _words(
        "county parish township borough hospital hospitals clinic clinics "
        "infirmary sanatorium medical memorial regional"
    ),
    PLACE_PREFIX: _words(
        "new north south east west port fort mount mt lake glen saint san santa "
        "los las el la le lower upper old little great"
    ),
    RELATIVE: _words(
        "wife husband son daughter mother father sister brother niece nephew aunt "
        "uncle cousin grandson granddaughter partner friend neighbour neighbor "
        "caregiver guardian fiance fiancee kin"
    ),
    PARTICLE: _words(
        "de del della da das dos du van von der den di la le y bin ibn am im sur "
        "ob an bei auf sul sulla en les"
    ),
    RESIDE: _words(
        "lives live living lived resides reside residing resident residence home "
        "born moved relocated native hometown originally grew"
    ),
    IN_AT: _words("in at to of near from up"),
    HANDLE_HEAD: _words(
        "instagram twitter facebook tiktok snapchat linkedin handle skype "
        "whatsapp telegram reddit youtube"
    ),
}
"""The hand-made word classes (the lists of :mod:`.vocab` give the first three)."""


@dataclass(frozen=True)
class Lexicon:
    """Every known word (sorted, lowercase) and its class bits.

    Attributes
    ----------
    words : pyarrow.Array
        The words, ``large_string``, sorted by their bytes (as Arrow compares
        them), each once.
    flags : numpy.ndarray
        The classes of each word (bits of this module); one more entry, 0,
        at the end for words not found.
    phrases : pyarrow.Array
        Places of several safe words, words separated by one space.

    """

    words: pa.Array
    flags: U32
    phrases: pa.Array

    @cached_property
    def phrase_heads(self) -> tuple[pa.Array, pa.Array]:
        """The first words of :attr:`phrases`, and their second words."""
        parts = [phrase.split(" ") for phrase in self.phrases.to_pylist()]
        return (
            pa.array(sorted({p[0] for p in parts}), TEXT),
            pa.array(sorted({p[1] for p in parts if len(p) > 1}), TEXT),
        )

    def classes(self, lowered: pa.Array) -> U32:
        """The class bits of each of ``lowered`` (0 for an unknown word).

        A binary search in the sorted words, not ``index_in``: that would
        hash the whole lexicon again on every call.
        """
        size = len(self.words)
        found = pc.fill_null(pc.search_sorted(self.words, lowered), size)
        where = np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.int64)
        where = np.minimum(where, size - 1)
        same = pc.equal(self.words.take(pa.array(where)), lowered)
        hit = np.asarray(pc.fill_null(same, False).to_numpy(zero_copy_only=False))
        classes: U32 = np.where(hit, self.flags[where], np.uint32(0)).astype(np.uint32)
        return classes

    def is_phrase(self, lowered: pa.Array) -> npt.NDArray[np.bool_]:
        """Whether each of ``lowered`` is a place of several words."""
        found = pc.is_in(lowered, value_set=self.phrases)
        return np.asarray(pc.fill_null(found, False).to_numpy(zero_copy_only=False))


@cache
def lexicon() -> Lexicon:
    """The lexicon, built once per process from the baked lists."""
    bits: dict[str, int] = {}
    for name, bit in (("safe_words", SAFE), ("names", NAME), ("places", PLACE)):
        for word in word_list(name):
            bits[word] = bits.get(word, 0) | bit
    for bit, members in _CLASSES.items():
        for word in members:
            bits[word] = bits.get(word, 0) | bit
    words = sorted(bits)
    flags = np.array([bits[w] for w in words] + [0], dtype=np.uint32)
    phrases: list[str] = [*word_list("place_phrases")]
    phrases += [
        f"{head} {day}" for head in _CLASSES[HOLIDAY_HEAD] for day in _CLASSES[DAY]
    ]
    return Lexicon(pa.array(words, TEXT), flags, pa.array(sorted(phrases), TEXT))
