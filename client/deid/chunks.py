"""Free text cut into whitespace chunks, each with what the allowlist needs to know.

This module owns the vectorised reading of a block of normalised text
(:func:`read_chunks`): each value split at spaces into chunks, each chunk's
core (its surrounding punctuation trimmed), its word (the core lowercased,
a possessive ``'s`` dropped), its shape (:data:`WORD`, :data:`COMPOUND`,
:data:`NUMBER`, the kept measurement shapes, :data:`CODE` ...), its
lexicon classes (:mod:`.lexicon`, one lookup; a compound's from its parts),
its number value, digit count, capitalisation and whether it ends a
sentence. The rules over neighbouring chunks are in :mod:`.allowlist`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from hospfed.client.deid.lexicon import SAFE, TITLE, U32, lexicon
from hospfed.client.deid.textbuf import TEXT, Bools, Ints

F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]

# Shapes of a chunk's core.
PUNCT = 0  # no letter or digit
WORD = 1  # ASCII letters (a possessive 's allowed)
COMPOUND = 2  # ASCII letters with inner punctuation: "follow-up", "o'brien"
NUMBER = 3  # a plain number: "12", "37.5", "1,200", "-3"
MEASURE = 4  # a number with a unit: "120mg", "80%", "5mg/kg", "98.6f"
RATIO = 5  # "120/80", "3/4"
RANGE = 6  # "3-4", "40-50"
TIME = 7  # "10:30", "7pm"
ORDINAL = 8  # "4th"
AGE_FORM = 9  # "93yo", "93-year-old", "93M"
SAFE_CODE = 10  # letters and digits on the safe vocabulary: "spo2", "b12"
DIGITS = 11  # digits and separators, no letters, no kept shape: "555-1234"
CODE = 12  # letters and digits, no kept shape: "HP0123", "1HGCM826"
CONTACT = 13  # holds "@", "://" or starts with "www."
FOREIGN = 14  # letters that are not ASCII: "José", "王伟"

KEPT_SHAPES = frozenset((PUNCT, NUMBER, MEASURE, RATIO, RANGE, TIME, ORDINAL))
"""Shapes kept unless a rule over their neighbours says otherwise."""

_TRIM = "\"'()[]{}<>,;:!?*.`"
_SENTENCE_END = pa.array([".", "!", "?", ":", ";"], TEXT)
_UNITS = (
    "mg|mcg|ug|g|kg|gm|gr|ml|cc|l|dl|mmol|umol|meq|mosm|iu|u|units?|mmhg|cmh2o|bpm|"
    "rpm|mm|cm|km|in|ft|lbs?|oz|kcal|cal|sec|secs|s|mins?|hrs?|h|d|wks?|mos?|ng|pg|"
    "fl|fmol|nmol|ms|mv|hz|kpa|atm|mph|x|%|°c|°f|c|pct"
)
_NUM = r"[+-]?[0-9]{1,4}(?:\.[0-9]{1,3})?"
_SHAPES: tuple[tuple[int, str], ...] = (
    (NUMBER, r"^[+-]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?$"),
    (
        MEASURE,
        rf"^{_NUM}(?:-{_NUM})?(?:{_UNITS})(?:/(?:[0-9]{{0,3}}(?:{_UNITS})))?$"
        rf"|^x[0-9]{{1,2}}$|^[0-9]{{1,3}}\.[0-9]{{1,2}}f$",
    ),
    (RATIO, r"^[0-9]{1,3}/[0-9]{1,3}$"),
    (RANGE, r"^[0-9]{1,3}-[0-9]{1,3}$"),
    (
        TIME,
        r"^(?:[01]?[0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9])?(?:am|pm|h)?$"
        r"|^(?:1[0-2]|0?[1-9])(?:am|pm|a\.m|p\.m)$",
    ),
    (ORDINAL, r"^[0-9]{1,2}(?:st|nd|rd|th)$"),
    (
        AGE_FORM,
        r"^[0-9]{1,3}-?(?:y/?o|y\.o|yo|yrs?|years?|y|m|f)(?:-?old)?$"
        r"|^[0-9]{1,3}-(?:years?|yrs?)-old$",
    ),
)


@dataclass(frozen=True)
class Chunks:
    """The chunks of a block of text, flat, in order, with their features.

    Attributes
    ----------
    text : pyarrow.Array
        Each chunk as written.
    rows : numpy.ndarray
        The row (in the block) of each chunk.
    per_row : numpy.ndarray
        Chunks in each row.
    word : pyarrow.Array
        The core lowercased, a possessive ``'s`` dropped.
    shape : numpy.ndarray
        One of the shapes of this module.
    flags : numpy.ndarray
        Lexicon classes of the word (a compound: AND of its parts' safe bit,
        OR of their other bits).
    value : numpy.ndarray
        The number of a :data:`NUMBER` (its leading number for
        :data:`AGE_FORM`, :data:`RATIO` and :data:`RANGE`), else NaN.
    second : numpy.ndarray
        The second number of a :data:`RATIO` or :data:`RANGE`, else NaN.
    digits : numpy.ndarray
        Digits in the chunk.
    decimals : numpy.ndarray
        Digits after the point of a :data:`NUMBER`.
    capital : numpy.ndarray
        Whether the core starts with a capital letter.
    ends_sentence : numpy.ndarray
        Whether the chunk ends with ``.``, ``!``, ``?``, ``:`` or ``;``.

    """

    text: pa.Array
    rows: Ints
    per_row: Ints
    word: pa.Array
    shape: U8
    flags: U32
    value: F64
    second: F64
    digits: Ints
    decimals: Ints
    capital: Bools
    ends_sentence: Bools

    def __len__(self) -> int:
        return len(self.rows)


def _np(array: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.generic]:
    return np.asarray(array.to_numpy(zero_copy_only=False))


def _bools(array: pa.Array) -> Bools:
    return np.asarray(_np(pc.fill_null(array, False)), dtype=bool)


def read_chunks(text: pa.Array) -> Chunks:
    """Cut normalised text into chunks and read each (see :class:`Chunks`).

    Parameters
    ----------
    text : pyarrow.Array
        A block of text, normalised (:func:`.normalise_text`).

    Returns
    -------
    Chunks
        Empty chunks (from repeated spaces) are left out.

    """
    pieces = pc.split_pattern(text, " ")
    flat = pc.list_flatten(pieces)
    rows = _np(pc.list_parent_indices(pieces)).astype(np.int64)
    filled = _bools(pc.greater(pc.binary_length(flat), 0))
    if not filled.all():
        flat, rows = flat.filter(pa.array(filled)), rows[filled]
    per_row = np.bincount(rows, minlength=len(text)).astype(np.int64)
    core = pc.utf8_trim(flat, _TRIM)
    lowered = pc.utf8_lower(core)
    word = pc.replace_substring_regex(lowered, "'s$", "")
    shape = np.full(len(flat), CODE, dtype=np.uint8)
    is_word = _bools(pc.ascii_is_alpha(word))
    shape[is_word] = WORD
    rest = np.flatnonzero(~is_word)
    flags = lexicon().classes(word)
    value = np.full(len(flat), np.nan)
    second = np.full(len(flat), np.nan)
    digits = np.zeros(len(flat), dtype=np.int64)
    decimals = np.zeros(len(flat), dtype=np.int64)
    if rest.size:
        _read_rest(word.take(pa.array(rest)), rest, shape, flags, value, second, digits)
        numbers = rest[shape[rest] == NUMBER]
        after = pc.utf8_length(
            pc.extract_regex(word.take(pa.array(numbers)), r"\.(?P<d>[0-9]*)$").field(
                "d"
            )
        )
        decimals[numbers] = _np(pc.fill_null(after, 0)).astype(np.int64)
    first = pc.utf8_slice_codeunits(core, 0, 1)
    capital = _bools(pc.utf8_is_upper(first))
    last = pc.utf8_slice_codeunits(flat, -1, 2**31 - 1)
    ends = _bools(pc.is_in(last, value_set=_SENTENCE_END))
    # "Dr." and an initial "J." end no sentence.
    ends &= (flags & TITLE) == 0
    ends &= ~(is_word & (_np(pc.binary_length(word)) == 1))
    return Chunks(
        flat,
        rows,
        per_row,
        word,
        shape,
        flags,
        value,
        second,
        digits,
        decimals,
        capital,
        ends,
    )


def _read_rest(
    words: pa.Array,
    where: Ints,
    shape: U8,
    flags: U32,
    value: npt.NDArray[np.float64],
    second: npt.NDArray[np.float64],
    digits: Ints,
) -> None:
    """Shapes, numbers and classes of the chunks that are not plain words."""
    counts = _np(pc.count_substring_regex(words, "[0-9]")).astype(np.int64)
    digits[where] = counts
    alnum = _bools(pc.match_substring_regex(words, "[a-z0-9]"))
    contact = _bools(pc.match_substring_regex(words, "@|://|^www\\."))
    ascii_text = _bools(pc.string_is_ascii(words))
    local = np.full(len(words), CODE, dtype=np.uint8)
    local[~alnum] = PUNCT
    lettered = ~(counts > 0) & alnum
    local[lettered & ascii_text] = COMPOUND
    foreign = ~ascii_text & _bools(pc.match_substring_regex(words, "\\pL"))
    local[foreign] = FOREIGN
    numeric = np.flatnonzero((counts > 0) & ~contact)
    if numeric.size:
        local[numeric] = _number_shapes(
            words.take(pa.array(numeric)), flags[where[numeric]]
        )
        _numbers(
            words.take(pa.array(numeric)), local[numeric], where[numeric], value, second
        )
    local[contact] = CONTACT
    shape[where] = local
    compound = np.flatnonzero(local == COMPOUND)
    if compound.size:
        whole = flags[where[compound]]
        parts = _compound_flags(words.take(pa.array(compound)))
        flags[where[compound]] = whole | parts


def _number_shapes(words: pa.Array, flags: U32) -> U8:
    shapes = np.full(len(words), CODE, dtype=np.uint8)
    undecided = np.ones(len(words), dtype=bool)
    for shape, regex in _SHAPES:
        hit = undecided & _bools(pc.match_substring_regex(words, regex))
        shapes[hit] = shape
        undecided &= ~hit
    safe = undecided & ((flags & SAFE) != 0)
    shapes[safe] = SAFE_CODE
    undecided &= ~safe
    no_letter = ~_bools(pc.match_substring_regex(words, "[a-z]"))
    shapes[undecided & no_letter] = DIGITS
    return shapes


def _numbers(
    words: pa.Array,
    shapes: U8,
    where: Ints,
    value: npt.NDArray[np.float64],
    second: npt.NDArray[np.float64],
) -> None:
    """The leading (and for ratios and ranges the second) number of each chunk."""
    parts = pc.extract_regex(
        words, r"^[+-]?(?P<a>[0-9,]*\.?[0-9]*)(?:[^0-9]+(?P<b>[0-9]+))?"
    )
    first = pc.replace_substring(pc.struct_field(parts, "a"), ",", "")
    is_number = np.isin(shapes, (NUMBER, AGE_FORM, RATIO, RANGE, MEASURE, ORDINAL))
    # "x12" (a measure) has no leading number; "." alone is none either.
    is_number &= _bools(pc.match_substring_regex(first, "[0-9]"))
    numbers = _np(
        pc.cast(pc.if_else(pa.array(is_number), first, None), pa.float64(), safe=False)
    )
    value[where] = np.asarray(numbers, dtype=np.float64)
    pair = np.isin(shapes, (RATIO, RANGE))
    if pair.any():
        b = pc.if_else(pa.array(pair), pc.struct_field(parts, "b"), None)
        second[where] = np.asarray(_np(pc.cast(b, pa.float64())), dtype=np.float64)


def _compound_flags(words: pa.Array) -> U32:
    """A compound's classes: safe if every part is; its parts' other classes."""
    parts = pc.split_pattern_regex(words, "[^a-z]+")
    flat = pc.list_flatten(parts)
    owner = _np(pc.list_parent_indices(parts)).astype(np.int64)
    filled = _bools(pc.greater(pc.binary_length(flat), 0))
    flat, owner = flat.filter(pa.array(filled)), owner[filled]
    classes = lexicon().classes(flat)
    result = np.zeros(len(words), dtype=np.uint32)
    np.bitwise_or.at(result, owner, classes & ~np.uint32(SAFE))
    unsafe = np.zeros(len(words), dtype=bool)
    np.logical_or.at(unsafe, owner, (classes & SAFE) == 0)
    has_part = np.zeros(len(words), dtype=bool)
    has_part[owner] = True
    result[has_part & ~unsafe] |= np.uint32(SAFE)
    return result
