"""Free text cut into whitespace chunks, each with what the allowlist needs to know.

This module owns the vectorised reading of a block of normalised text
(:func:`read_chunks`): each value split at spaces into chunks, each chunk's
core (its surrounding punctuation trimmed), its word (the core lowercased,
a possessive ``'s`` dropped), its shape (:data:`WORD`, :data:`COMPOUND`,
:data:`NUMBER`, the kept measurement shapes, :data:`CODE` ...), its
lexicon classes (:mod:`.lexicon`, one lookup; a compound's from its parts),
its number value, digit count, capitalisation and whether it ends a
sentence. A chunk's features depend on its text alone, so each distinct
chunk of a block is read once (notes repeat their words and templates)
and its features are spread to every chunk that is it. The rules over
neighbouring chunks are in :mod:`.allowlist`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from hospfed.client.deid.lexicon import SAFE, TITLE, U32, lexicon
from hospfed.client.deid.textbuf import TEXT, Bools, Ints, _buffers

F64 = npt.NDArray[np.float64]
_A = TypeVar("_A", bound=npt.NDArray[Any])
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

    A chunk's features depend on its text alone, and notes repeat their
    words, so they are read once per distinct chunk (:attr:`texts`) and
    spread to every chunk through :attr:`kind`.

    Attributes
    ----------
    rows : numpy.ndarray
        The row (in the block) of each chunk.
    per_row : numpy.ndarray
        Chunks in each row.
    kind : numpy.ndarray
        The distinct chunk each chunk is (an index into :attr:`texts`).
    texts : pyarrow.Array
        Each distinct chunk as written.
    words : pyarrow.Array
        The word of each distinct chunk: its core (surrounding punctuation
        trimmed) lowercased, a possessive ``'s`` dropped.
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

    rows: Ints
    per_row: Ints
    kind: Ints
    texts: pa.Array
    words: pa.Array
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

    def words_at(self, where: Ints) -> pa.Array:
        """The words of the chunks at positions ``where``."""
        return self.words.take(pa.array(self.kind[where], pa.int64()))

    def by_word(self, where: Ints, read: Callable[[pa.Array, Ints], _A]) -> _A:
        """``read`` once per distinct chunk among ``where``, for each of ``where``.

        ``read`` gets the distinct chunks' words and, for each, the position
        of one chunk that is it, and returns one value per distinct chunk.
        """
        kinds = self.kind[where]
        seen = np.zeros(len(self.texts), dtype=bool)
        seen[kinds] = True
        distinct = np.flatnonzero(seen)
        one = np.zeros(len(self.texts), dtype=np.int64)
        one[kinds] = where
        slot = np.zeros(len(self.texts), dtype=np.int64)
        slot[distinct] = np.arange(distinct.size)
        values = read(self.words.take(pa.array(distinct)), one[distinct])
        return cast(_A, values[slot[kinds]])


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
    encoded = pc.dictionary_encode(flat)
    kind = _np(encoded.indices).astype(np.int64)
    texts = encoded.dictionary.cast(TEXT)
    read = _read_distinct(texts)
    return Chunks(
        rows,
        per_row,
        kind,
        texts,
        read.words,
        read.shape[kind],
        read.flags[kind],
        read.value[kind],
        read.second[kind],
        read.digits[kind],
        read.decimals[kind],
        read.capital[kind],
        read.ends_sentence[kind],
    )


@dataclass(frozen=True)
class _Read:
    """The features of each distinct chunk (see :class:`Chunks`)."""

    words: pa.Array
    shape: U8
    flags: U32
    value: F64
    second: F64
    digits: Ints
    decimals: Ints
    capital: Bools
    ends_sentence: Bools


def _read_distinct(flat: pa.Array) -> _Read:
    """The features of distinct chunks, each read from its text alone."""
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
        # Plain whole numbers ("12", "63514961"), many of a block's distinct
        # chunks, are read directly: a NUMBER, its digits and value, as
        # _read_rest would find them through its regular expressions.
        rest_words = word.take(pa.array(rest))
        count = _byte_counts(rest_words, _DIGIT_BYTES)
        length = np.asarray(_np(pc.binary_length(rest_words)), dtype=np.int64)
        plain = (count > 0) & (count == length)
        whole = rest[plain]
        if whole.size:
            shape[whole], digits[whole] = NUMBER, count[plain]
            number = pc.cast(
                rest_words.filter(pa.array(plain)), pa.float64(), safe=False
            )
            value[whole] = np.asarray(_np(number), dtype=np.float64)
        rest = rest[~plain]
    if rest.size:
        _read_rest(word.take(pa.array(rest)), rest, shape, flags, value, second, digits)
        numbers = rest[shape[rest] == NUMBER]  # plain ones have no decimals
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
    return _Read(word, shape, flags, value, second, digits, decimals, capital, ends)


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
    counts = _byte_counts(words, _DIGIT_BYTES)
    digits[where] = counts
    alnum = _byte_counts(words, _ALNUM_BYTES) > 0
    # Plain substring searches: the same as the regex "@|://|^www\." and faster.
    contact = _bools(pc.match_substring(words, "@"))
    contact |= _bools(pc.match_substring(words, "://"))
    contact |= _bools(pc.starts_with(words, "www."))
    ascii_text = _bools(pc.string_is_ascii(words))
    local = np.full(len(words), CODE, dtype=np.uint8)
    local[~alnum] = PUNCT
    lettered = ~(counts > 0) & alnum
    local[lettered & ascii_text] = COMPOUND
    other = np.flatnonzero(~ascii_text)
    if other.size:
        lettered_other = pc.match_substring_regex(words.take(pa.array(other)), "\\pL")
        local[other[_bools(lettered_other)]] = FOREIGN
    numeric = np.flatnonzero((counts > 0) & ~contact)
    if numeric.size:
        numeric_words = words.take(pa.array(numeric))
        letter = _byte_counts(numeric_words, _LETTER_BYTES) > 0
        shapes = _number_shapes(numeric_words, flags[where[numeric]], letter)
        local[numeric] = shapes
        # Codes and digit strings have no value: only the others are parsed.
        valued = np.flatnonzero(np.isin(shapes, _VALUED))
        if valued.size:
            _numbers(
                numeric_words.take(pa.array(valued)),
                shapes[valued],
                where[numeric[valued]],
                value,
                second,
            )
    local[contact] = CONTACT
    shape[where] = local
    compound = np.flatnonzero(local == COMPOUND)
    if compound.size:
        whole = flags[where[compound]]
        parts = _compound_flags(words.take(pa.array(compound)))
        flags[where[compound]] = whole | parts


def _byte_table(characters: str) -> Bools:
    table = np.zeros(256, dtype=bool)
    table[list(characters.encode("ascii"))] = True
    return table


_DIGIT_BYTES = _byte_table("0123456789")
_LETTER_BYTES = _byte_table("abcdefghijklmnopqrstuvwxyz")
_ALNUM_BYTES = _DIGIT_BYTES | _LETTER_BYTES


def _byte_counts(words: pa.Array, table: Bools) -> Ints:
    """How many bytes of each of ``words`` are in ``table`` (ASCII bytes).

    NumPy over the UTF-8 buffer, as ``count_substring_regex("[0-9]")``
    would count, without a regular expression per value (no byte of a
    multi-byte character is ASCII).
    """
    offsets, data = _buffers(words)
    running = np.zeros(data.size + 1, dtype=np.int64)
    np.cumsum(table[data], out=running[1:])
    counts: Ints = running[offsets[1:]] - running[offsets[:-1]]
    return counts


def _number_shapes(words: pa.Array, flags: U32, letter: Bools) -> U8:
    """The shape of each chunk holding a digit (``letter``: it holds a-z too)."""
    shapes = np.full(len(words), CODE, dtype=np.uint8)
    undecided = np.arange(len(words))
    for shape, regex in _SHAPES:  # in order: the first shape that fits
        if not undecided.size:
            break
        hit = _bools(pc.match_substring_regex(words.take(undecided), regex))
        shapes[undecided[hit]] = shape
        undecided = undecided[~hit]
    safe = (flags[undecided] & SAFE) != 0
    shapes[undecided[safe]] = SAFE_CODE
    undecided = undecided[~safe]
    shapes[undecided[~letter[undecided]]] = DIGITS
    return shapes


_VALUED = (NUMBER, AGE_FORM, RATIO, RANGE, MEASURE, ORDINAL)
"""Shapes whose leading number is their value (the others have none)."""


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
    is_number = np.isin(shapes, _VALUED)
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
