"""Tests of the scrubber's vectorised machinery against plain reference versions.

The scrub reads each distinct chunk once (:class:`~hospfed.client.deid.chunks.Chunks`),
looks words up by binary search (:meth:`~hospfed.client.deid.lexicon.Lexicon.classes`),
counts bytes and gathers the output with NumPy; each is checked here against
the obvious Python (or Arrow regex) definition on data that exercises its
edge cases, and the whole scrub against itself block by block.
"""

import itertools
import random
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from hospfed.client.deid import blocks, deidentify, scrub_free_text
from hospfed.client.deid.chunks import (
    _TRIM,
    _byte_counts,
    _read_distinct,
    _read_rest,
    read_chunks,
)
from hospfed.client.deid.lexicon import lexicon
from hospfed.client.deid.profile import MIN_ROWS_FOR_UNIQUENESS, _one_per_row, _yyyymmdd
from hospfed.client.deid.scrub import OwnWords, _joined, _scrub_block
from hospfed.client.deid.tags import T_LOCATION, T_NAME, TAGS
from hospfed.client.deid.textbuf import TEXT, _concat_spans
from hospfed.client.deid.textnorm import normalise_text
from hospfed.common.schema import Column
from tests.client.deid.adversarial import adversarial_export
from tests.client.deid.exports import NOTES_SCHEMA, SECRETS

_PIECES = [
    *"abcXYZ019 .,;:()[]'\"-/@#%&*!?`{}<>",
    "  ",
    "\t",
    "\u00a0",
    "é",
    "王",
    "\uff11",
    "\u200b",
    "mg",
    "Dr.",
    " Will ",
    "May",
    "90",
    "yo",
    "1,200",
    "3-4",
    "12/25",
    " at ",
    " dot ",
    "com",
    " St ",
    "Box",
    "x12",
    "'s",
    "\u2013",
    " Salt Lake City ",
]


def _fuzz(count: int, seed: int) -> list[str | None]:
    """Random notes of the pieces above, some missing, some empty."""
    rng = random.Random(seed)
    notes: list[str | None] = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.03:
            notes.append(None)
        elif roll < 0.06:
            notes.append(rng.choice(["", "   ", "..."]))
        else:
            size = rng.randint(1, 30)
            notes.append("".join(rng.choice(_PIECES) for _ in range(size)))
    return notes


def _reference_join(text: list[str | None], chunks, tags) -> list[str | None]:
    """Each row's chunks joined by spaces, a tagged one as punctuation, tag,
    punctuation (the regex the scrub used before it gathered bytes)."""
    around = re.compile(f"^([{re.escape(_TRIM)}]*)(.*?)([{re.escape(_TRIM)}]*)$", re.S)
    texts = chunks.texts.to_pylist()
    out: list[str | None] = []
    at = 0
    for row, value in enumerate(text):
        pieces = []
        for _ in range(int(chunks.per_row[row])):
            chunk = texts[chunks.kind[at]]
            if tags[at]:
                match = around.match(chunk)
                assert match is not None
                chunk = match[1] + TAGS[tags[at]] + match[3]
            pieces.append(chunk)
            at += 1
        out.append(None if value is None else " ".join(pieces))
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_the_gathered_output_equals_joining_the_chunks_in_python(seed):
    text = normalise_text(pa.array(_fuzz(3000, seed), TEXT))
    chunks = read_chunks(text)
    rng = np.random.default_rng(seed)
    tags = rng.integers(0, len(TAGS), len(chunks)).astype(np.uint8)
    tags[rng.random(len(chunks)) < 0.5] = 0
    joined = _joined(text, chunks, tags)
    assert joined.to_pylist() == _reference_join(text.to_pylist(), chunks, tags)


def test_chunks_are_read_alike_however_often_they_repeat():
    text = normalise_text(pa.array(_fuzz(2000, 2), TEXT))
    chunks = read_chunks(text)
    flat = pc.list_flatten(pc.split_pattern(text, " "))
    flat = flat.filter(pc.greater(pc.binary_length(flat), 0))
    assert chunks.texts.take(pa.array(chunks.kind)).to_pylist() == flat.to_pylist()
    each = _read_distinct(flat)  # every chunk read on its own
    assert np.array_equal(chunks.shape, each.shape)
    assert np.array_equal(chunks.flags, each.flags)
    assert np.array_equal(chunks.value, each.value, equal_nan=True)
    assert np.array_equal(chunks.second, each.second, equal_nan=True)
    assert np.array_equal(chunks.digits, each.digits)
    assert np.array_equal(chunks.decimals, each.decimals)
    assert np.array_equal(chunks.capital, each.capital)
    assert np.array_equal(chunks.ends_sentence, each.ends_sentence)
    assert chunks.words_at(np.arange(len(chunks))).to_pylist() == each.words.to_pylist()
    where = np.flatnonzero(chunks.shape != 0)
    lengths = chunks.by_word(where, lambda words, _: pc.utf8_length(words).to_numpy())
    expected = pc.utf8_length(each.words.take(pa.array(where))).to_numpy()
    assert np.array_equal(lengths, expected)


def test_plain_numbers_are_read_as_the_regular_expressions_read_them():
    words = ["12", "0007", "63514961", "9" * 30, "2021", "0", "1,200", "+3", "12a"]
    read = _read_distinct(pa.array(words, TEXT))
    size = len(words)
    shape = np.zeros(size, dtype=np.uint8)
    flags = lexicon().classes(pa.array(words, TEXT))
    value, second = np.full(size, np.nan), np.full(size, np.nan)
    digits = np.zeros(size, dtype=np.int64)
    _read_rest(
        pa.array(words, TEXT), np.arange(size), shape, flags, value, second, digits
    )
    assert read.shape.tolist() == shape.tolist()
    assert read.digits.tolist() == digits.tolist()
    assert np.array_equal(read.value, value, equal_nan=True)
    assert np.array_equal(read.second, second, equal_nan=True)
    assert read.decimals.tolist() == [0] * size


def test_the_lexicon_is_sorted_by_bytes_for_its_binary_search():
    words = lexicon().words.to_pylist()
    encoded = [w.encode() for w in words]
    assert all(a < b for a, b in itertools.pairwise(encoded))


def test_a_word_has_its_classes_by_binary_search_as_by_a_dictionary():
    known = lexicon()
    words = known.words.to_pylist()
    flags = dict(zip(words, known.flags[:-1].tolist(), strict=True))
    rng = random.Random(0)
    asked = rng.sample(words, 2000)
    asked += [w + "q" for w in asked[:500]] + [w[:-1] for w in asked[500:1000]]
    asked += ["", "\x00", "zzzzzzzz", words[0], words[-1], "é", "王伟", "a b"]
    classes = known.classes(pa.array(asked, TEXT))
    assert classes.tolist() == [flags.get(w, 0) for w in asked]


def test_bytes_are_counted_per_value_as_a_regex_counts_them():
    values = pa.array(
        ["", "a1b22", "\uff11\uff12", "x9é9", "999", "abc", "王9"] * 3, TEXT
    )
    table = np.zeros(256, dtype=bool)
    table[list(b"0123456789")] = True
    expected = pc.count_substring_regex(values, "[0-9]").to_numpy()
    assert np.array_equal(_byte_counts(values, table), expected)
    assert np.array_equal(_byte_counts(values.slice(2, 9), table), expected[2:11])


def test_spans_are_concatenated_in_order_skipping_empty_ones():
    data = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    starts = np.array([3, 0, 15, 7, 0, 10], dtype=np.int64)
    lengths = np.array([2, 0, 1, 3, 4, 0], dtype=np.int64)
    assert _concat_spans(data, starts, lengths).tobytes() == b"34f7890123"
    nothing = np.zeros(0, dtype=np.int64)
    assert _concat_spans(data, nothing, nothing).size == 0


def test_yyyymmdd_dates_are_found_as_the_plain_formula_finds_them():
    numbers = np.array(
        [18000101, 18000100, 21001231, 21001232, 20210230, 19991301, 1e6, 3e8, 0.0],
        dtype=np.float64,
    )
    year, month, day = numbers // 10_000, (numbers // 100) % 100, numbers % 100
    expected = (year >= 1800) & (year <= 2100) & (month >= 1) & (month <= 12)
    expected &= (day >= 1) & (day <= 31)
    assert _yyyymmdd(numbers).tolist() == expected.tolist()


def test_whole_numbers_are_one_per_row_only_when_none_repeats():
    size = MIN_ROWS_FOR_UNIQUENESS + 10
    spread = np.arange(size, dtype=np.float64) - 5  # exactly as many as the range
    assert _one_per_row(spread)
    repeated = spread.copy()
    repeated[-1] = repeated[0]  # the range is one short now
    assert not _one_per_row(repeated)
    gappy = spread * 3  # a wide range, one repeat: the sort decides
    gappy[7] = gappy[8]
    assert not _one_per_row(gappy)
    assert _one_per_row(spread * 3)
    assert not _one_per_row(spread[: MIN_ROWS_FOR_UNIQUENESS - 1])


def test_an_own_word_of_two_columns_takes_the_tag_of_the_first():
    name = Column("patient_name", "string", role="identifier", phi="name")
    city = Column("city", "string", role="identifier", phi="geographic")
    rows = 5000  # a block large enough for NumPy to sort by another method
    names = pa.array(["Mary York"] * rows, TEXT)
    cities = pa.array(["Port Mary"] * rows, TEXT)
    own = OwnWords.of([(name, names), (city, cities)])
    chunks = read_chunks(pa.array(["Seen with Mary and york today."] * rows, TEXT))
    marks = own.marks(chunks)
    assert marks is not None
    mary = chunks.kind == chunks.texts.to_pylist().index("Mary")
    assert set(marks[mary].tolist()) == {T_NAME}
    york = chunks.kind == chunks.texts.to_pylist().index("york")
    assert set(marks[york].tolist()) == {T_NAME}
    own = OwnWords.of([(city, cities), (name, names)])
    assert set(own.marks(chunks)[mary].tolist()) == {T_LOCATION}


@pytest.mark.parametrize("rows_per_block", [97, 1000])
def test_the_scrub_does_not_depend_on_how_rows_are_cut_into_blocks(
    monkeypatch, rows_per_block
):
    raw, _ = adversarial_export(1500, seed=5)
    whole, whole_report = deidentify(raw, NOTES_SCHEMA, SECRETS, k=1)
    monkeypatch.setattr(blocks, "_ROWS_PER_BLOCK", rows_per_block)
    cut, cut_report = deidentify(raw, NOTES_SCHEMA, SECRETS, k=1)
    pd.testing.assert_frame_equal(cut, whole)
    assert cut_report == whole_report


def test_scrubbing_a_block_alone_equals_scrubbing_it_among_others():
    notes = pa.array(_fuzz(4000, 3), TEXT)
    together, _ = scrub_free_text(notes)
    apart = [_scrub_block(notes.slice(i, 500), None)[0] for i in range(0, 4000, 500)]
    assert pa.concat_arrays(apart).to_pylist() == together.to_pylist()
