"""The allowlist decision: which chunks of free text survive, and the tag of the rest.

This module owns the rules, after UCSF's Philter (Norgeot et al., npj Digit.
Med. 3, 57, 2020): a chunk of text (:mod:`.chunks`) survives only if it is
a safe word on no name or place list, a kept number shape (a small number,
a year, a value with a unit, a blood pressure, a time, a dose range) or
punctuation; everything else becomes a tag (:data:`TAGS`). Then rules over
neighbouring chunks of the same row, vectorised with NumPy, remove what a
word alone does not give away:

- a word that is both safe and a name or place ("Will", "Rose", "Do",
  "Mobile") is removed when it is capitalised and does not begin a
  sentence, follows a title (Dr, Mrs ...), is capitalised next to a
  removed name or place, or is one of the row's own identifier words;
  otherwise it is kept (lowercase "will", "rose", "do"; "Will" beginning a
  sentence). A capitalised word before "disease", "syndrome" ... is an
  eponym and kept if safe;
- the word after a title is a name, whatever its case;
- runs of numbers split by spaces or punctuation holding 5 digits or more
  (SSNs, phone numbers, card numbers in groups) go whole, except two
  numbers of at most 3 digits each ("120 80");
- numbers of 5 digits or more, 4 digits that are not a year, more than 3
  decimals (coordinates), and pairs "a/b", "a-b" that could be a month and
  a day (unless a count follows: "3-4 times") are removed;
- dates: month names (May and March only capitalised inside a sentence or
  next to a day), a day or year next to a month ("4th of March"),
  holidays ("Christmas", "Memorial Day") and a year next to them, a year
  after "born" or "DOB";
- ages over 89: a number from 90 next to an age word ("93 y.o.", "aged
  93", "93 years of age", "93 M") or written as such ("93yo"), and number
  words from "ninety" next to one;
- addresses: a number followed within four words by a street suffix, a
  capitalised street name before its suffix, the unit after it, PO boxes,
  rural routes and highways with their number; places of several safe
  words ("Salt Lake City");
- contacts: "(at)", "[at]", "at" and "dot" between removed words, "dot"
  before a domain ending, words joined by dots ("example.com"), words
  beside such a connector, a handle after "instagram", "twitter" ...; the
  rest of a code split by a space, a phone's extension, places before
  "County" or after "New", names after a relative or a particle;
- residences: the capitalised words after "from", "lives in", "born in",
  "moved to", "native of" ... up to a comma or the end of the sentence, whatever
  they are ("lives in Aprica", "born in Alte Di Montecchio").
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hospfed.client.deid.chunks import (
    AGE_FORM,
    CODE,
    COMPOUND,
    CONTACT,
    DIGITS,
    FOREIGN,
    MEASURE,
    NUMBER,
    ORDINAL,
    PUNCT,
    RANGE,
    RATIO,
    WORD,
    Chunks,
)
from hospfed.client.deid.lexicon import (
    AGE_AFTER,
    AGE_BEFORE,
    AT_DOT,
    BIRTH,
    BOX,
    COUNT_WORD,
    DAY,
    EPONYM_HEAD,
    EXTENSION,
    HANDLE_HEAD,
    HOLIDAY,
    HOLIDAY_HEAD,
    IN_AT,
    MONTH,
    MONTH_ABBR,
    MONTH_WORD,
    NAME,
    NUMBER_WORD,
    OF_THE,
    ORDINAL_WORD,
    OVER_89_WORD,
    PARTICLE,
    PLACE,
    PLACE_HEAD,
    PLACE_PREFIX,
    RELATIVE,
    RESIDE,
    SAFE,
    STREET,
    TITLE,
    TLD,
    UNIT,
    lexicon,
)
from hospfed.client.deid.neighbours import (
    _all_texts,
    _all_words,
    _among,
    _Rows,
    _run_ids,
)
from hospfed.client.deid.tags import (
    KEEP,
    T_AGE,
    T_DATE,
    T_EMAIL,
    T_ID,
    T_LOCATION,
    T_NAME,
    T_PHONE,
    T_REDACTED,
    T_URL,
    U8,
    _by_digits,
    _code_tags,
    _np_bools,
)
from hospfed.client.deid.textbuf import TEXT, Bools, Ints


def decide(chunks: Chunks, own: U8 | None = None) -> U8:
    """The tag of each chunk (:data:`TAGS`; 0 where it is kept).

    Parameters
    ----------
    chunks : Chunks
        A block's chunks.
    own : numpy.ndarray, optional
        For each chunk that is one of its row's own identifier words, the
        tag it takes (0 for the others).

    Returns
    -------
    numpy.ndarray
        A tag code per chunk.

    """
    shape, flags = chunks.shape, chunks.flags
    near = _Rows(chunks.rows)

    known: dict[int, Bools] = {}

    def has(bit: int) -> Bools:
        found = known.get(bit)
        if found is None:
            found = known[bit] = np.asarray((flags & np.uint32(bit)) != 0)
            found.flags.writeable = False  # shared by the rules
        return found

    worded = (shape == WORD) | (shape == COMPOUND)
    tags = _alone(chunks, worded, has)
    _numbers(chunks, tags, near, has)
    _digit_runs(chunks, tags, near)
    _extensions(chunks, tags, near)
    _ages(chunks, tags, near, worded, has)
    _dates(chunks, tags, near, worded, has)
    _addresses(chunks, tags, near, worded, has)
    _contacts(chunks, tags, near, worded, has)
    _names(chunks, tags, near, worded, has, own)
    _residences(chunks, tags, near, worded, has)
    return tags


_Has = Callable[[int], Bools]


def _alone(chunks: Chunks, worded: Bools, has: _Has) -> U8:
    """Tags from each chunk alone: words off the safe vocabulary, codes, contacts."""
    shape = chunks.shape
    tags = np.zeros(len(chunks), dtype=np.uint8)
    unknown = worded & ~has(SAFE)
    tags[unknown] = T_REDACTED
    tags[unknown & has(PLACE)] = T_LOCATION
    tags[unknown & has(NAME)] = T_NAME
    tags[unknown & has(MONTH | MONTH_WORD | MONTH_ABBR | HOLIDAY)] = T_DATE
    tags[worded & has(MONTH | HOLIDAY)] = T_DATE
    tags[shape == FOREIGN] = np.where(
        chunks.capital[shape == FOREIGN], T_NAME, T_REDACTED
    )
    coded = np.flatnonzero(_among(shape, (CODE, DIGITS, CONTACT)))
    if coded.size:
        tags[coded] = chunks.by_word(
            coded, lambda words, one: _code_tags(words, chunks.digits[one])
        )
    # Words joined by dots: a domain or an address ("example.com", "jane.roe").
    dotted = np.flatnonzero(shape == COMPOUND)
    if dotted.size:
        hit = chunks.by_word(dotted, _dotted)
        tags[dotted[hit]] = T_URL
    return tags


def _dotted(words: pa.Array, _: Ints) -> Bools:
    return _np_bools(
        pc.match_substring_regex(words, r"[a-z]{2,}\.[a-z]|[a-z]\.[a-z]{2,}")
    )


def _numbers(chunks: Chunks, tags: U8, near: _Rows, has: _Has) -> None:
    """Numbers too long, too precise, or shaped like a month and a day."""
    shape, value, digits = chunks.shape, chunks.value, chunks.digits
    count_next = near.next(has(COUNT_WORD))
    number = shape == NUMBER
    decimals = chunks.decimals
    whole_digits = digits - decimals
    year = number & (digits == 4) & (value >= 1800) & (value <= 2100) & (decimals == 0)
    long_number = number & ((whole_digits >= 5) | (decimals > 3))
    four = number & (whole_digits == 4) & ~year & ~count_next
    tags[long_number | four] = _by_digits(digits[long_number | four])
    a, b = value, chunks.second
    small = (a <= 31) & (b <= 31)
    could_be_date = ((a <= 12) & (b <= 31)) | ((a <= 31) & (b <= 12))
    ratio = (shape == RATIO) & (a <= 31) & ~(small & count_next)
    span = (shape == RANGE) & could_be_date & ~count_next
    tags[ratio | span] = T_DATE
    tags[(shape == AGE_FORM) & (value >= 90)] = T_AGE
    extension = near.prev(has(EXTENSION) & (shape == WORD))  # "ext. 22"
    tags[extension & _among(shape, (NUMBER, DIGITS, CODE))] = T_PHONE


def _digit_runs(chunks: Chunks, tags: U8, near: _Rows) -> None:
    """Numbers split by spaces or punctuation: 5 digits or more go whole."""
    shape, digits = chunks.shape, chunks.digits
    numeric = _among(shape, (NUMBER, DIGITS, RATIO, RANGE)) & (digits > 0)
    run = _run_ids(numeric | (shape == PUNCT), near)
    if not run.any():
        return
    size = int(run.max()) + 1
    total = np.bincount(run, weights=np.where(numeric, digits, 0), minlength=size)
    parts = np.bincount(run, weights=numeric, minlength=size)
    largest = np.zeros(size)
    # A run's numbers stand together: the most digits of each by reduceat
    # (np.maximum.at does the same, several times slower).
    members, counts = run[numeric], digits[numeric]
    if members.size:
        firsts = np.flatnonzero(np.diff(members, prepend=-1))
        largest[members[firsts]] = np.maximum.reduceat(counts, firsts)
    gone = (total >= 5) & (parts >= 2) & ~((parts == 2) & (largest <= 3))
    gone[0] = False
    hit = numeric & gone[run] & (tags == KEEP)
    tags[hit] = _by_digits(total[run[hit]].astype(np.int64))
    # The rest of a code split by a space: "MRN#7251 356", "5WLL 467".
    code = (shape == CODE) & (digits > 0) & (tags != KEEP)
    beside = _among(shape, (NUMBER, DIGITS)) & (tags == KEEP)
    for _ in range(3):
        hit = beside & (near.prev(code) | near.next(code)) & (tags == KEEP)
        if not hit.any():
            break
        tags[hit] = T_ID
        code = code | hit


def _ages(chunks: Chunks, tags: U8, near: _Rows, worded: Bools, has: _Has) -> None:
    """Ages over 89 next to an age word, in digits or in words."""
    value = chunks.value
    sex = _all_words(chunks, lambda words: pc.is_in(words, value_set=_SEX_WORDS))
    after = near.next(has(AGE_AFTER)) | near.next(sex & (chunks.shape == WORD))
    before = near.prev(has(AGE_BEFORE))
    old = (chunks.shape == NUMBER) & (value >= 90) & (value < 150)
    tags[old & (after | before)] = T_AGE
    spelled = worded & has(NUMBER_WORD)
    run = _run_ids(spelled, near)
    if run.any():
        size = int(run.max()) + 1
        over = np.zeros(size, dtype=bool)
        over[run[spelled & has(OVER_89_WORD)]] = True
        ends = spelled & ~near.next(spelled)
        starts = spelled & ~near.prev(spelled)
        context = np.zeros(size, dtype=bool)
        # "ninety-three-year-old", "one hundred-one-year-old"
        context[run[spelled & (chunks.shape == COMPOUND) & has(AGE_AFTER)]] = True
        context[run[ends & after]] = True
        context[run[starts & before]] = True
        over &= context
        over[0] = False
        tags[spelled & over[run]] = T_AGE


_SEX_WORDS = pa.array(
    ["m", "f", "male", "female", "man", "woman", "gentleman", "lady"], TEXT
)


def _dates(chunks: Chunks, tags: U8, near: _Rows, worded: Bools, has: _Has) -> None:
    """Months next to a day or year, May and March inside a sentence, holidays."""
    shape, value, digits = chunks.shape, chunks.value, chunks.digits
    number = shape == NUMBER
    year = number & (digits == 4) & (value >= 1800) & (value <= 2100)
    day = (number & (value >= 1) & (value <= 31) & (digits <= 2)) | (shape == ORDINAL)
    day |= worded & has(ORDINAL_WORD)
    dayish = day | year
    of = worded & has(OF_THE)
    month = worded & has(MONTH | MONTH_WORD | MONTH_ABBR)
    by_day = near.prev(dayish) | near.next(dayish)
    by_day |= (near.prev(of) & near.prev(dayish, 2)) | (
        near.next(of) & near.next(dayish, 2)
    )
    inside = chunks.capital & ~_sentence_start(chunks, near)
    dated = month & (has(MONTH) | by_day | (has(MONTH_WORD) & inside))
    holiday = worded & has(HOLIDAY)
    head = worded & chunks.capital & has(HOLIDAY_HEAD) & near.next(worded & has(DAY))
    dated |= holiday | head | near.prev(head)
    tags[dated] = T_DATE
    around = near.prev(dated) | near.next(dated)
    around |= near.prev(dated, 2) & near.prev(of | dayish)
    around |= near.next(dated, 2) & near.next(of | dayish)
    around |= near.prev(dated, 3) & near.prev(dayish, 2)  # "March 4, 2021"
    tags[dayish & around] = T_DATE
    tags[year & near.prev(has(BIRTH))] = T_DATE


def _sentence_start(chunks: Chunks, near: _Rows) -> Bools:
    first = ~near.prev(np.ones(len(chunks), dtype=bool))
    return np.asarray(first | near.prev(chunks.ends_sentence))


def _addresses(chunks: Chunks, tags: U8, near: _Rows, worded: Bools, has: _Has) -> None:
    """Street addresses, PO boxes, rural routes, places of several words."""
    numberish = _among(chunks.shape, (NUMBER, CODE, DIGITS))
    capital = worded & chunks.capital
    street = worded & has(STREET)
    found = np.zeros(len(chunks), dtype=bool)
    alive = street.copy()
    for back in range(1, 5):  # "12 Elm Street", "12 Old Mill Pond Rd"
        hit = alive & near.prev(numberish, back)
        for step in range(back + 1):
            found |= near.next(hit, step)
        alive &= near.prev(worded, back)
    named = street & chunks.capital & near.prev(capital)  # "on Elm Street"
    found |= named | near.next(named) | (near.next(named, 2) & capital)
    unit = worded & has(UNIT) & near.prev(found & street)  # "Apt 4B"
    found |= unit | near.prev(unit)
    box = worded & has(BOX) & near.next(numberish)  # "PO Box 12", "RR 2"
    before = near.next(box) & worded & (has(BOX) | chunks.capital)
    found |= box | near.prev(box) | before | (near.next(before) & capital)
    found |= _phrases(chunks, near, capital)
    # "Cherry County", "Green Valley Hospital": capitalised words before a head.
    lead = capital & ~has(PLACE_HEAD)
    before_head = lead & near.next(capital & has(PLACE_HEAD))
    found |= before_head | (lead & near.next(before_head))
    # "South Billtown", "Port Ryanmouth": a prefix before a removed name.
    gone = _among(tags, _NAMED) | found | has(NAME | PLACE)
    found |= capital & has(PLACE_PREFIX) & near.next(gone & chunks.capital)
    # "2479 Pamela Shoal": a number, then capitalised words of which one is removed.
    removed = capital & (_among(tags, _NAMED) | has(NAME | PLACE))
    street_run = capital & near.prev(numberish)
    for _ in range(2):
        street_run |= capital & near.prev(street_run)
    runs = _run_ids(street_run, near)
    if runs.any():
        has_removed = np.zeros(int(runs.max()) + 1, dtype=bool)
        has_removed[runs[street_run & removed]] = True
        has_removed[0] = False
        street = street_run & has_removed[runs]
        found |= street | (near.next(street) & numberish)  # and its house number
    tags[found & ((tags == KEEP) | (tags == T_ID) | (tags == T_REDACTED))] = T_LOCATION


def _phrases(chunks: Chunks, near: _Rows, capital: Bools) -> Bools:
    """Chunks that are part of a place of several safe words ("Salt Lake City")."""
    found = np.zeros(len(chunks), dtype=bool)
    # Only runs whose first two words open some phrase are joined and looked
    # up (a filter on each distinct word; the lookup itself decides).
    heads, seconds = lexicon().phrase_heads
    head = _all_words(chunks, lambda words: pc.is_in(words, value_set=heads))
    second = _all_words(chunks, lambda words: pc.is_in(words, value_set=seconds))
    for length in (2, 3):
        starts = capital & head & near.next(second)
        for step in range(2, length):
            starts &= near.next(np.ones(len(chunks), dtype=bool), step)
        where = np.flatnonzero(starts)
        if not where.size:
            continue
        joined = chunks.words_at(where)
        for step in range(1, length):
            following = chunks.words_at(where + step)
            joined = pc.binary_join_element_wise(
                joined, following, pa.scalar(" ", TEXT)
            )
        hit = where[lexicon().is_phrase(joined)]
        for step in range(length):
            found[hit + step] = True
    return found


def _contacts(chunks: Chunks, tags: U8, near: _Rows, worded: Bools, has: _Has) -> None:
    """Spelled-out e-mail addresses: "(at)", "x at y dot com"; social handles."""
    handle = near.prev(worded & has(HANDLE_HEAD)) & (chunks.shape != PUNCT)
    tags[handle & ~(worded & has(HANDLE_HEAD))] = T_EMAIL
    at_dot = np.flatnonzero(worded & has(AT_DOT))
    if not at_dot.size and not (chunks.shape == CONTACT).any():
        return
    brackets = _all_texts(chunks, lambda t: pc.match_substring_regex(t, r"[(\[{<]"))
    bracketed = at_dot[brackets[at_dot]]
    tags[bracketed] = T_EMAIL
    removed = tags != KEEP
    between = np.zeros(len(chunks), dtype=bool)
    between[at_dot] = True
    between &= near.prev(removed) & near.next(removed)
    tags[between] = T_EMAIL
    dots = at_dot[_np_bools(pc.equal(chunks.words_at(at_dot), "dot"))]
    domain = np.zeros(len(chunks), dtype=bool)
    domain[dots] = True
    domain &= near.next(worded & has(TLD))
    tags[domain | near.prev(domain)] = T_EMAIL
    # "x at host dot com", "user [at] host [dot] net", "user @ host . com":
    # a word beside a connector that is part of an address goes with it.
    connector = np.zeros(len(chunks), dtype=bool)
    connector[at_dot] = True
    contact = np.flatnonzero(chunks.shape == CONTACT)
    if contact.size:
        bare = pc.equal(chunks.words_at(contact), "@")
        connector[contact[_np_bools(bare)]] = True
    if not connector.any():
        return
    part = worded | _among(chunks.shape, (CODE, NUMBER, PUNCT))
    for _ in range(3):
        address = connector & (tags == T_EMAIL)
        beside = (near.prev(address) | near.next(address)) & part & (tags == KEEP)
        tags[beside & ~connector] = T_EMAIL
        removed = tags != KEEP
        tags[connector & near.prev(removed) & near.next(removed)] = T_EMAIL


def _extensions(chunks: Chunks, tags: U8, near: _Rows) -> None:
    """A phone's extension written on to an "x": "555-1234 x72"."""
    after = np.flatnonzero(
        (chunks.shape == MEASURE) & near.prev((tags == T_PHONE) | (tags == T_ID))
    )
    if after.size:
        hit = pc.match_substring_regex(chunks.words_at(after), "^x[0-9]+$")
        tags[after[_np_bools(hit)]] = T_PHONE


_NAMED = (T_NAME, T_LOCATION, T_REDACTED)


def _names(
    chunks: Chunks,
    tags: U8,
    near: _Rows,
    worded: Bools,
    has: _Has,
    own: U8 | None,
) -> None:
    """Words that are both safe and a name or place, decided by their context."""
    capital = chunks.capital
    kept = tags == KEEP
    ambiguous = worded & has(SAFE) & has(NAME | PLACE) & kept
    tag_of = np.where(has(NAME), T_NAME, T_LOCATION).astype(np.uint8)
    after_title = near.prev(worded & has(TITLE))
    eponym = near.next(has(EPONYM_HEAD))
    inside = capital & ~_sentence_start(chunks, near) & ~eponym
    gone = ambiguous & (inside | after_title)
    tags[gone] = tag_of[gone]
    titled = after_title & worded & (tags == KEEP)
    tags[titled] = T_NAME
    relative = near.prev(worded & has(RELATIVE) & ~chunks.ends_sentence)
    relative &= worded & capital & (tags == KEEP)  # not after "(brother)."
    tags[relative] = T_NAME  # "her husband An Nguyen"
    if own is not None:
        mine = (own != KEEP) & (tags == KEEP)
        tags[mine] = own[mine]
    for _ in range(2):
        named = _among(tags, _NAMED) & capital
        beside = near.prev(named) | near.next(named)
        gone = ambiguous & capital & beside & (tags == KEEP)
        tags[gone] = tag_of[gone]
        # "Esteban de Jaen": a capitalised word after a particle after a name,
        # and the particle between two ("Muhldorf am Inn").
        after = near.prev(worded & has(PARTICLE)) & near.prev(named, 2)
        gone = after & worded & capital & (tags == KEEP)
        tags[gone] = T_NAME
        named = _among(tags, _NAMED) & capital
        between = worded & has(PARTICLE) & near.prev(named) & near.next(named)
        tags[between & (tags == KEEP)] = T_NAME
    # "discussed with An Pham": a short capitalised word inside a sentence
    # before a removed name (not a title: "Dr [NAME]").
    inner = worded & capital & ~_sentence_start(chunks, near) & ~has(TITLE)
    short = np.flatnonzero(inner & near.next(named) & (tags == KEEP))
    if short.size:
        length = pc.utf8_length(chunks.words_at(short)).to_numpy()
        tags[short[np.asarray(length) <= 3]] = T_NAME


def _residences(
    chunks: Chunks, tags: U8, near: _Rows, worded: Bools, has: _Has
) -> None:
    """The capitalised run after "lives in", "born in" ...: a place, all of it."""
    open_ = worded & ~chunks.ends_sentence
    prep = open_ & has(IN_AT)
    cue = near.prev(prep) & (
        near.prev(open_ & has(RESIDE), 2)
        | (near.prev(prep, 2) & near.prev(open_ & has(RESIDE), 3))  # "grew up in"
    )
    cue |= near.prev(open_ & _all_words(chunks, lambda w: pc.equal(w, "from")))
    named = (worded | (chunks.shape == FOREIGN)) & chunks.capital
    stops = chunks.ends_sentence | _all_texts(chunks, lambda t: pc.ends_with(t, ","))
    run = cue & named
    place = run.copy()
    for _ in range(5):  # "Alte Di Montecchio Maggiore", "Aica Di Fie'"
        go_on = near.prev(run & ~stops)
        particle = worded & has(PARTICLE)
        run = go_on & (named | (particle & near.next(named | particle)))
        place |= run
    tags[place & (tags == KEEP)] = T_LOCATION
