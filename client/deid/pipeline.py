"""De-identification under HIPAA Safe Harbor, driven by the schema, and its checks.

:func:`deidentify` applies each raw column's ``deid`` action (see
:class:`~hospfed.common.schema.contract.Column`): direct identifiers are dropped or
replaced by keyed pseudonyms (HMAC-SHA256 under a per-hospital secret, never
a plain hash); dates keep their year or are shifted by a secret per-patient
offset; ages over 89 become 90; ZIP codes keep 3 digits, or ``000`` in the
sparsely populated areas of :data:`RESTRICTED_ZIP3`; free text is scrubbed
of the row's own identifier values (the words of the patient's name, the
street address, the city) and of identifier patterns
(:data:`IDENTIFIER_PATTERNS`); a k-anonymity report over the
quasi-identifiers can suppress rows in groups smaller than k.
:func:`scan_residual_identifiers` looks for anything identifier-like left in
the result and :func:`check_residual_identifiers` fails closed on it, and
:func:`deidentify_checked` does validate, de-identify and check in one call.
The work is vectorised (pyarrow compute kernels, NumPy over Arrow's byte
buffers) and the text columns go a block of rows at a time on worker
threads, which keeps the memory peak small; only the HMAC of each distinct
value, and free text that is not ASCII, go value by value in Python. Nothing
here ever puts a patient value in a message or report.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC

from hospfed.common.errors import (
    ConfigError,
    DataError,
    IdentifierLeakError,
    SchemaError,
)
from hospfed.common.schema import (
    AGE_CAP,
    PSEUDONYM_LETTERS,
    PSEUDONYM_PREFIX,
    Column,
    DatasetSchema,
    is_text,
    parse_dates,
    text_array,
)

Ints = npt.NDArray[np.int64]
_T = TypeVar("_T")
TEXT = pa.large_string()

# --- configuration ------------------------------------------------------------


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
    source=(
        "HHS OCR, Guidance Regarding Methods for De-identification (2012), "
        "section 2.4: 3-digit ZIP areas with 20,000 people or fewer in the "
        "2000 Census"
    ),
    prefixes=frozenset(
        {
            "036",
            "059",
            "063",
            "102",
            "203",
            "556",
            "692",
            "790",
            "821",
            "823",
            "830",
            "831",
            "878",
            "879",
            "884",
            "890",
            "893",
        }
    ),
)

RESTRICTED_ZIP3 = SAFE_HARBOR_ZIP3_CENSUS_2000
"""The list :func:`deidentify` uses unless told otherwise.

Safe Harbor says to use the most recent Census data: when OCR publishes a
newer list, add it as a new :class:`RestrictedZip3` and point this at it.
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


# --- identifier patterns ------------------------------------------------------


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
_UNKNOWN_TAG = "[ID]"
_MARK = "\x00"

_OWN_VALUE_TAGS = {"name": "[NAME]", "geographic": "[LOCATION]"}
"""The tag replacing a row's own value of each Safe Harbor category (else ``[ID]``)."""

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
_TITLES = "mr mrs ms miss mx dr prof md do dds dmd dvm phd rn np jr sr ii iii iv esq"
"""Words of a name that are not the patient's: titles, degrees and suffixes."""
_MIN_NAME_WORD = 2
_MIN_OWN_VALUE = 3


# --- the report ---------------------------------------------------------------


@dataclass(frozen=True)
class KAnonymity:
    """How well the quasi-identifiers hide each patient in a crowd.

    Attributes
    ----------
    quasi_identifiers : tuple of str
        The columns combined.
    k : int or None
        The threshold asked for, if any.
    min_group_size : int
        Size of the smallest group of rows sharing all quasi-identifiers
        (the data is ``min_group_size``-anonymous); 0 for no rows.
    groups : int
        Number of distinct combinations.
    rows_below_k : int
        Rows in groups smaller than ``k`` before suppression (0 if no ``k``).

    """

    quasi_identifiers: tuple[str, ...]
    k: int | None
    min_group_size: int
    groups: int
    rows_below_k: int


@dataclass(frozen=True)
class DeidReport:
    """What de-identification did: counts and column names, never values.

    Attributes
    ----------
    schema : str
        The raw schema, as ``name vN``.
    rows_in, rows_out : int
        Rows before and after (rows out = rows in - rows suppressed).
    dropped : tuple of str
        Columns removed.
    pseudonymised : tuple of str
        Columns replaced by keyed pseudonyms.
    generalised : tuple of (str, str)
        ``(column, action)`` for dates, ZIP codes and ages.
    scrubbed : tuple of str
        Free-text columns scrubbed.
    scrub_counts : tuple of (str, int)
        Replacements made in free text, per tag, most frequent first.
    ages_capped : int
        Ages over 89 set to 90.
    zip3_restricted : int
        ZIP codes set to ``000``.
    zip3_list : str
        Version of the restricted ZIP prefix list.
    rows_suppressed : int
        Rows removed for being in a group smaller than k.
    k_anonymity : KAnonymity
        The report on the quasi-identifiers, after suppression.

    """

    schema: str
    rows_in: int
    rows_out: int
    dropped: tuple[str, ...]
    pseudonymised: tuple[str, ...]
    generalised: tuple[tuple[str, str], ...]
    scrubbed: tuple[str, ...]
    scrub_counts: tuple[tuple[str, int], ...]
    ages_capped: int
    zip3_restricted: int
    zip3_list: str
    rows_suppressed: int
    k_anonymity: KAnonymity

    def to_lines(self) -> list[str]:
        """Return the report as short lines for the command line."""
        lines = [
            f"schema: {self.schema}",
            f"rows: {self.rows_in:,} in, {self.rows_out:,} out "
            f"({self.rows_suppressed:,} suppressed)",
            f"dropped ({len(self.dropped)}): {_names(self.dropped)}",
            f"pseudonymised ({len(self.pseudonymised)}): "
            f"{_names(self.pseudonymised)} (keyed HMAC-SHA256)",
            f"generalised ({len(self.generalised)}): "
            + (
                ", ".join(self._generalisation(c, a) for c, a in self.generalised)
                or "-"
            ),
            f"scrubbed ({len(self.scrubbed)}): {_names(self.scrubbed)}"
            + (
                " (" + ", ".join(f"{tag} {n:,}" for tag, n in self.scrub_counts) + ")"
                if self.scrub_counts
                else ""
            ),
            self._k_line(),
        ]
        return lines

    def _generalisation(self, column: str, action: str) -> str:
        if action == "zip3":
            return (
                f"{column} -> 3-digit ZIP ({self.zip3_restricted:,} set to 000, "
                f"list {self.zip3_list})"
            )
        if action == "age_cap":
            return f"{column} -> 90+ ({self.ages_capped:,} capped)"
        return f"{column} -> {'year' if action == 'year' else 'shifted date'}"

    def _k_line(self) -> str:
        k = self.k_anonymity
        if not k.quasi_identifiers:
            return "k-anonymity: no quasi-identifiers"
        below = f"; {k.rows_below_k:,} rows were in groups < {k.k}" if k.k else ""
        return (
            f"k-anonymity over {_names(k.quasi_identifiers)}: k = {k.min_group_size:,} "
            f"({k.groups:,} groups{below})"
        )


def _names(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "-"


# --- de-identification --------------------------------------------------------


@dataclass
class _Tally:
    """Counts gathered while de-identifying (mutable, private)."""

    scrub_counts: Counter[str] = field(default_factory=Counter)
    ages_capped: int = 0
    zip3_restricted: int = 0


def deidentify(
    frame: pd.DataFrame,
    schema: DatasetSchema,
    secrets: DeidSecrets,
    *,
    k: int | None = None,
    restricted_zip3: RestrictedZip3 = RESTRICTED_ZIP3,
) -> tuple[pd.DataFrame, DeidReport]:
    """De-identify a raw export under its schema's ``deid`` actions.

    Parameters
    ----------
    frame : pandas.DataFrame
        The raw export, already checked with ``schema.validate``. Text
        columns are fastest Arrow-backed (``string[pyarrow]``).
    schema : DatasetSchema
        Its raw contract.
    secrets : DeidSecrets
        The hospital's pseudonym and date-shift secrets.
    k : int, optional
        If given, rows whose quasi-identifier combination is shared by fewer
        than ``k`` rows are suppressed.
    restricted_zip3 : RestrictedZip3
        The ZIP prefixes that become ``000``.

    Returns
    -------
    frame : pandas.DataFrame
        Columns of ``schema.deidentified()``, rows in their original order
        with their original index labels (so the raw identifiers can be
        aligned for :func:`scan_residual_identifiers`; write it without the
        index).
    report : DeidReport
        What was done, without any patient value.

    Raises
    ------
    ConfigError
        If ``schema`` is not a raw schema or ``k`` is not positive.
    SchemaError
        If a column of the schema is missing.
    DataError
        If a date to shift has no patient key.

    """
    result = _deidentify(frame, schema, secrets, k, restricted_zip3, checked=False)
    return result.frame, result.report


@dataclass(frozen=True)
class _Result:
    """De-identified rows, the report, and the leaks found block by block."""

    frame: pd.DataFrame
    report: DeidReport
    leaks: _Leaks
    kept: Ints


def _deidentify(
    frame: pd.DataFrame,
    schema: DatasetSchema,
    secrets: DeidSecrets,
    k: int | None,
    restricted_zip3: RestrictedZip3,
    *,
    checked: bool,
) -> _Result:
    """De-identify; with ``checked``, validate too and look for own values left.

    The text columns are de-identified in blocks of rows on worker threads
    (:func:`_deidentify_rows`) while this thread does the dates and numbers.
    With ``checked``, ``schema.validate`` runs on a worker alongside them and
    its error, if any, is the one raised: nothing is returned from data that
    breaks the contract.
    """
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        # A shallow copy: the validating thread gets its own column cache.
        validation = (
            pool.submit(schema.validate, frame.copy(deep=False)) if checked else None
        )
        blocks: list[Future[_RowsDone]] = []
        try:
            _check_request(frame, schema, k)
            job = _RowsJob.of(frame, schema, secrets, restricted_zip3, checked=checked)
            blocks += [
                pool.submit(_deidentify_rows, job, rows)
                for rows in _row_blocks(len(frame))
            ]
            tally = _Tally()
            columns = _whole_columns(frame, schema, secrets, job, tally)
            if validation is not None:
                validation.result()
            done = [block.result() for block in blocks]
        except Exception:
            for block in blocks:
                block.cancel()
            _raise_contract_error(validation)
            raise
    columns |= _block_columns(frame, job, done, tally)
    out = pd.DataFrame(
        {n: columns[n] for n in schema.column_names if n in columns}, index=frame.index
    )
    del columns
    quasi_identifiers = schema.deidentified().quasi_identifiers
    out, anonymity, kept = _k_anonymise(out, quasi_identifiers, k)
    report = _report(frame, schema, out, tally, restricted_zip3, anonymity)
    return _Result(out, report, _merged([d.leaks for d in done]), kept)


def _raise_contract_error(validation: Future[None] | None) -> None:
    """Raise the validation's error, if it failed (waiting for it to finish)."""
    broken = None if validation is None else validation.exception()
    if broken is not None:
        raise broken from None


def _whole_columns(
    frame: pd.DataFrame,
    schema: DatasetSchema,
    secrets: DeidSecrets,
    job: _RowsJob,
    tally: _Tally,
) -> dict[str, pd.Series]:
    """The kept columns and those done whole (dates, ages), by name."""
    return {
        c.name: _deidentified(frame, c, schema, secrets, tally)
        for c in schema.columns
        if c.action != "drop" and c.name not in job.produced_names
    }


def _block_columns(
    frame: pd.DataFrame, job: _RowsJob, done: Sequence[_RowsDone], tally: _Tally
) -> dict[str, pd.Series]:
    """The columns done block by block, joined; their counts go to ``tally``."""
    for block in done:
        tally.scrub_counts.update(block.marking_counts)
        tally.zip3_restricted += block.zip3_restricted
    for block in done:
        tally.scrub_counts.update(block.pattern_counts)
    return {
        name: _text_series(
            pa.chunked_array([block.columns[name] for block in done], TEXT),
            frame[name],
        )
        for name in job.produced_names
    }


def _check_request(frame: pd.DataFrame, schema: DatasetSchema, k: int | None) -> None:
    if schema.stage != "raw":
        raise ConfigError(
            f"schema {schema.name!r} describes de-identified data; "
            "de-identify with the raw export's schema"
        )
    if k is not None and (isinstance(k, bool) or k < 1):
        raise ConfigError(f"k must be a positive whole number, got {k!r}")
    missing = [c for c in schema.column_names if c not in frame.columns]
    if missing:
        raise SchemaError(f"schema {schema.name!r}: missing columns {missing}")


def _report(
    frame: pd.DataFrame,
    schema: DatasetSchema,
    out: pd.DataFrame,
    tally: _Tally,
    restricted_zip3: RestrictedZip3,
    anonymity: KAnonymity,
) -> DeidReport:
    return DeidReport(
        schema=f"{schema.name} v{schema.version}",
        rows_in=len(frame),
        rows_out=len(out),
        dropped=_with_action(schema, ("drop",)),
        pseudonymised=_with_action(schema, ("pseudonymise",)),
        generalised=tuple(
            (c.name, c.action)
            for c in schema.columns
            if c.action in ("year", "shift", "zip3", "age_cap")
        ),
        scrubbed=_with_action(schema, ("scrub",)),
        scrub_counts=_most_common_first(tally.scrub_counts),
        ages_capped=tally.ages_capped,
        zip3_restricted=tally.zip3_restricted,
        zip3_list=restricted_zip3.version,
        rows_suppressed=len(frame) - len(out),
        k_anonymity=anonymity,
    )


def _most_common_first(counts: Counter[str]) -> tuple[tuple[str, int], ...]:
    """Counts by tag, most frequent first; ties in the order of :data:`_KIND_TAGS`."""
    order = {tag: rank for rank, tag in enumerate(_KIND_TAGS)}
    ranked = sorted(counts.items(), key=lambda c: (-c[1], order.get(c[0], len(order))))
    return tuple(ranked)


def _with_action(schema: DatasetSchema, actions: Iterable[str]) -> tuple[str, ...]:
    return tuple(c.name for c in schema.columns if c.action in actions)


def _deidentified(
    frame: pd.DataFrame,
    column: Column,
    schema: DatasetSchema,
    secrets: DeidSecrets,
    tally: _Tally,
) -> pd.Series:
    """A column whose action works on whole columns: dates, ages, kept columns."""
    values = frame[column.name]
    action = column.action
    if action == "year":
        years = parse_dates(values, column.effective_date_format).dt.year
        return years.astype("Int64")
    if action == "shift":
        key = schema.patient_key
        assert key is not None  # the schema refuses 'shift' without one
        return _shifted(values, column, text_array(frame[key]), secrets.date_shift)
    if action == "age_cap":
        over = (values > AGE_CAP - 1).fillna(False).astype(bool)
        tally.ages_capped += int(over.sum())
        return values.mask(over, AGE_CAP)
    return values


def _text_series(array: pa.Array | pa.ChunkedArray, like: pd.Series) -> pd.Series:
    return pd.Series(
        pd.arrays.ArrowStringArray(array.cast(TEXT)), index=like.index, name=like.name
    )


# --- text columns, a block of rows at a time ----------------------------------
#
# Pseudonyms, 3-digit ZIP codes and scrubbed free text are made one block of
# rows at a time on worker threads: a block's temporary arrays stay small
# (the memory peak does not grow with the export), and the GIL-free Arrow
# kernels of one block (the regular expressions) run while another thread
# holds the GIL (the HMACs, NumPy's indexing). A block also builds its rows'
# own identifier values once, for the scrub and for the residual scan.

_ROWS_PER_BLOCK = 1 << 17
_WORKERS = max(1, min(4, pa.cpu_count()))
_MAX_CHUNKS = 16
"""Columns in more chunks are joined before a regular expression runs over them."""
_PRODUCED = ("pseudonymise", "zip3", "scrub")
"""Actions done block by block; they all give text."""


def _row_blocks(rows: int) -> list[slice]:
    """The rows in blocks of :data:`_ROWS_PER_BLOCK` (one empty block if none)."""
    return [
        slice(first, min(first + _ROWS_PER_BLOCK, rows))
        for first in range(0, max(rows, 1), _ROWS_PER_BLOCK)
    ]


def _in_parallel(tasks: Sequence[Callable[[], _T]]) -> list[_T]:
    """Run ``tasks`` on worker threads (Arrow and most NumPy work drop the GIL)."""
    if len(tasks) < 2:
        return [task() for task in tasks]
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        return list(pool.map(lambda task: task(), tasks))


def _text_chunks(values: pd.Series) -> pa.ChunkedArray:
    """A text column as Arrow chunks, without a copy if it is Arrow-backed."""
    array = pa.array(values, from_pandas=True)
    chunks = array if isinstance(array, pa.ChunkedArray) else pa.chunked_array([array])
    if pa.types.is_null(chunks.type):
        return chunks.cast(TEXT)
    return chunks


def _text_rows(values: pa.ChunkedArray, rows: slice) -> pa.Array:
    """Rows ``rows`` of a text column as one ``large_string`` array."""
    return _plain(values.slice(rows.start, rows.stop - rows.start))


def _output_is_text(column: Column) -> bool:
    """Whether the de-identified column is text (so the scan looks at it)."""
    return column.action in _PRODUCED or (
        column.action == "keep" and column.kind == "string"
    )


def _is_needle_source(column: Column) -> bool:
    """Whether a column's values are needles: see :func:`_own_values`."""
    return (
        column.role == "identifier"
        and column.kind == "string"
        and column.phi not in _PATTERN_SHAPED
    )


@dataclass(frozen=True)
class _RowsJob:
    """What every block of rows needs to de-identify its text columns.

    Attributes
    ----------
    text : mapping of str to pyarrow.ChunkedArray
        The raw text of the columns below, whole (blocks slice it).
    produced : tuple of Column
        Columns de-identified block by block (:data:`_PRODUCED`).
    checked : tuple of (str, bool)
        The text columns of the output, each with whether it is free text,
        to look for the rows' own values in (none unless checked).
    sources : tuple of Column
        Identifier columns whose values are needles.
    secrets : DeidSecrets
        The hospital's secrets.
    restricted_zip3 : RestrictedZip3
        The ZIP prefixes that become ``000``.

    """

    text: Mapping[str, pa.ChunkedArray]
    produced: tuple[Column, ...]
    checked: tuple[tuple[str, bool], ...]
    sources: tuple[Column, ...]
    secrets: DeidSecrets
    restricted_zip3: RestrictedZip3

    @classmethod
    def of(
        cls,
        frame: pd.DataFrame,
        schema: DatasetSchema,
        secrets: DeidSecrets,
        restricted_zip3: RestrictedZip3,
        *,
        checked: bool,
    ) -> _RowsJob:
        produced = tuple(c for c in schema.columns if c.action in _PRODUCED)
        scrubbing = any(c.action == "scrub" for c in produced)
        check = tuple(
            (c.name, c.role == "free_text")
            for c in schema.columns
            if checked and _output_is_text(c)
        )
        sources = tuple(
            c for c in schema.columns if (scrubbing or checked) and _is_needle_source(c)
        )
        needed = {c.name for c in produced + sources} | {name for name, _ in check}
        text = {n: _text_chunks(frame[n]) for n in schema.column_names if n in needed}
        return cls(text, produced, check, sources, secrets, restricted_zip3)

    @property
    def produced_names(self) -> frozenset[str]:
        return frozenset(c.name for c in self.produced)


@dataclass(frozen=True)
class _RowsDone:
    """One block's de-identified text columns, counts and leaks found."""

    columns: dict[str, pa.Array]
    marking_counts: Counter[str]
    pattern_counts: Counter[str]
    zip3_restricted: int
    leaks: _Leaks


def _deidentify_rows(job: _RowsJob, rows: slice) -> _RowsDone:
    """De-identify the text columns of one block of rows (on a worker thread)."""
    text = {name: _text_rows(values, rows) for name, values in job.text.items()}
    own = _own_values([(c, text[c.name]) for c in job.sources])
    columns: dict[str, pa.Array] = {}
    marking: Counter[str] = Counter()
    patterns: Counter[str] = Counter()
    restricted = 0
    for column in job.produced:
        values = text[column.name]
        if column.action == "pseudonymise":
            columns[column.name] = pseudonymise(values, job.secrets.pseudonym)
        elif column.action == "zip3":
            columns[column.name], count = zip3(values, job.restricted_zip3)
            restricted += count
        else:
            marked = _mark_free_text(values, own, marking)
            columns[column.name], counts = _scrub_patterns(marked)
            patterns.update(counts)
    output = {
        name: (columns[name] if name in columns else text[name], free_text)
        for name, free_text in job.checked
    }
    leaks = _value_leaks(output, own, rows.start)
    return _RowsDone(columns, marking, patterns, restricted, leaks)


# --- pseudonyms and date shifts -----------------------------------------------


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


# --- free text ----------------------------------------------------------------
#
# Free text is scrubbed in two steps over the Arrow byte buffers, a block of
# rows at a time. (1) Each row's own identifier values ("needles": the words
# of the patient's name, the city, the street address) are found as whole
# words with NumPy and overwritten, byte for byte, with a placeholder byte of
# their tag, so that nothing moves. (2) One RE2 pass marks every match of the
# identifier patterns and every run of placeholders; each value is split at
# the marks, the marked pieces are classified and swapped for their tags, and
# the value is joined back. A word is a run of ASCII letters or a run of
# digits, so "Smith555-1234" holds the word "smith". Rows with text or
# needles that are not ASCII take a per-row path for step 1 (case folding can
# change the length of non-ASCII text, so byte positions would not line up).
# The needles are indexed once per block by row and first 2 bytes
# (_NeedleIndex); the residual scan looks for them again, with the same
# index, in the scrubbed text, independently of what step 1 found.

U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]
Bools = npt.NDArray[np.bool_]

_OTHER, _LETTER, _DIGIT = 0, 1, 2
_MIN_PARALLEL_ROWS = 1 << 16
_PLACEHOLDERS = {"[NAME]": 1, "[LOCATION]": 2, _UNKNOWN_TAG: 3}
"""The placeholder byte of each own-value tag (see step 1 above)."""
_PLACEHOLDER_RUN = "[\\x01-\\x03]+"
_CONTROL = "[\\x00-\\x03]"
_SCRUB_PATTERN = f"{_COMBINED}|(?:{_PLACEHOLDER_RUN})"


def _halves(array: pa.ChunkedArray) -> list[pa.ChunkedArray]:
    """The array in two halves, if it is long enough to be worth it."""
    middle = len(array) // 2
    if middle < _MIN_PARALLEL_ROWS:
        return [array]
    return [array.slice(0, middle), array.slice(middle)]


def _plain(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One ``large_string`` array (no copy of the bytes if there is one chunk)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.chunk(0) if array.num_chunks == 1 else array.combine_chunks()
    return array.cast(TEXT)


def _buffers(array: pa.Array) -> tuple[Ints, U8]:
    """Offsets (starting at 0) and UTF-8 bytes of a ``large_string`` array."""
    _, offsets_buffer, data_buffer = array.buffers()
    if offsets_buffer is None:  # an empty array may have no buffers at all
        return np.zeros(len(array) + 1, np.int64), np.zeros(0, np.uint8)
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[
        array.offset : array.offset + len(array) + 1
    ]
    if data_buffer is None or not len(offsets):
        return np.zeros(len(array) + 1, np.int64), np.zeros(0, np.uint8)
    data = np.frombuffer(data_buffer, dtype=np.uint8)
    return offsets - offsets[0], data[offsets[0] : offsets[-1]]


def _text_from(offsets: Ints, data: U8, like: pa.Array) -> pa.Array:
    """A string array of ``data`` cut at ``offsets``, with the nulls of ``like``."""
    text = pa.LargeStringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data)
    )
    if like.null_count:
        text = pc.if_else(like.is_valid(), text, pa.scalar(None, TEXT))
    return text


def _spans_text(data: U8, starts: Ints, ends: Ints) -> pa.Array:
    """The byte spans ``[starts, ends)`` of ``data`` as a string array."""
    lengths = ends - starts
    picked = data[np.repeat(starts, lengths) + _ramp(lengths)]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return pa.LargeStringArray.from_buffers(
        len(starts), pa.py_buffer(offsets), pa.py_buffer(picked)
    )


def _ramp(lengths: Ints) -> Ints:
    """``0..n-1`` for each ``n`` in ``lengths``, concatenated."""
    total = int(lengths.sum())
    return np.arange(total, dtype=np.int64) - np.repeat(
        np.cumsum(lengths) - lengths, lengths
    )


def _char_classes(data: U8, *, non_ascii: int = _OTHER) -> U8:
    """Class of each byte: 1 an ASCII letter, 2 a digit, else ``non_ascii`` or 0."""
    letter = ((data | 0x20) - np.uint8(ord("a")) < 26).view(np.uint8)
    digit = (data - np.uint8(ord("0")) < 10).view(np.uint8)
    classes = np.bitwise_or(letter, np.left_shift(digit, 1), dtype=np.uint8)
    if non_ascii != _OTHER:
        non_ascii_bytes = (data >= 0x80).view(np.uint8) * np.uint8(non_ascii)
        classes = np.bitwise_or(classes, non_ascii_bytes, dtype=np.uint8)
    return classes


def _any_in(flags: Bools, offsets: Ints) -> Bools:
    """Whether each value of a string array has a flagged byte."""
    found = np.zeros(len(offsets) - 1, dtype=bool)
    filled = offsets[1:] > offsets[:-1]
    if flags.size:
        found[filled] = np.logical_or.reduceat(flags, offsets[:-1][filled])
    return found


def _words(classes: U8, offsets: Ints) -> tuple[Ints, Ints, Ints]:
    """Start, end and row of every word (a run of bytes of one class).

    ``offsets`` delimit the rows in ``classes`` (from 0); no word crosses a
    row's end.
    """
    edge, in_word = _class_edges(classes, offsets)
    starts = np.flatnonzero(edge[:-1] & in_word)
    ends = np.flatnonzero(edge[1:] & in_word) + 1
    return starts, ends, _row_of(starts, offsets).astype(np.int64)


def _word_starts(classes: U8, offsets: Ints) -> Ints:
    """Where each word starts."""
    edge, in_word = _class_edges(classes, offsets)
    return np.flatnonzero(edge[:-1] & in_word)


def _class_edges(classes: U8, offsets: Ints) -> tuple[Bools, Bools]:
    """Where the class changes or a row starts (one more than bytes), and words."""
    size = classes.size
    edge = np.ones(size + 1, dtype=bool)
    np.not_equal(classes[1:], classes[:-1], out=edge[1:size])
    edge[offsets] = True
    return edge, classes != _OTHER


def _row_of(positions: Ints, offsets: Ints) -> npt.NDArray[np.int32]:
    """The row of each of the ascending byte ``positions``."""
    per_row = np.diff(np.searchsorted(positions, offsets))
    return np.repeat(np.arange(len(offsets) - 1, dtype=np.int32), per_row)


# --- (1) each row's own values ------------------------------------------------


@dataclass(frozen=True)
class _OwnValues:
    """Each row's own identifier values ("needles"), lowercased, sorted by row.

    The needles are byte spans ``data[starts:ends]`` of one buffer of UTF-8
    text.

    Attributes
    ----------
    row_count : int
        Rows of the block the needles belong to.
    rows : numpy.ndarray
        Row position of each needle, ascending.
    starts, ends : numpy.ndarray
        Each needle's bytes in ``data``.
    first_word : numpy.ndarray
        Length of each needle's first word (0 if it does not start with one
        or is not ASCII: such needles take the per-row path).
    data : numpy.ndarray
        The lowercased text of the identifier columns.
    source_index : numpy.ndarray
        Index into ``sources`` of each needle's column.
    sources : tuple of str
        The raw identifier columns.
    tags : tuple of str
        The tag replacing a needle of each source.

    """

    row_count: int
    rows: Ints
    starts: Ints
    ends: Ints
    first_word: Ints
    data: U8
    source_index: Ints
    sources: tuple[str, ...]
    tags: tuple[str, ...]

    @classmethod
    def empty(cls, row_count: int) -> _OwnValues:
        nothing = np.zeros(0, np.int64)
        no_bytes = np.zeros(0, np.uint8)
        return cls(
            row_count, nothing, nothing, nothing, nothing, no_bytes, nothing, (), ()
        )

    def __len__(self) -> int:
        return len(self.rows)

    def texts(self, index: Ints) -> pa.Array:
        """The needles ``index`` as a string array."""
        return _spans_text(self.data, self.starts[index], self.ends[index])

    def in_rows(self, rows: slice) -> _OwnValues:
        """The needles of ``rows``, renumbered from 0."""
        low, high = np.searchsorted(self.rows, [rows.start, rows.stop])
        part = slice(int(low), int(high))
        return _OwnValues(
            row_count=rows.stop - rows.start,
            rows=self.rows[part] - rows.start,
            starts=self.starts[part],
            ends=self.ends[part],
            first_word=self.first_word[part],
            data=self.data,
            source_index=self.source_index[part],
            sources=self.sources,
            tags=self.tags,
        )

    @cached_property
    def index(self) -> _NeedleIndex:
        """The needles that start with an ASCII word, ready to look for."""
        return _NeedleIndex.of(self)


@dataclass(frozen=True)
class _NeedleIndex:
    """The needles of :attr:`_OwnValues.index`, by row and first 2 bytes.

    Built once per block, for the scrub and for the residual scan.

    Attributes
    ----------
    needles : numpy.ndarray
        Needles (indices into the own values) whose first word is ASCII,
        ordered by ``keys``.
    keys : numpy.ndarray
        ``row << 16 | head`` of each, ascending; a needle's head is its first
        2 bytes (every needle has 2 or more).
    row_bits : numpy.ndarray
        Per row, the bits (:data:`_HEAD_BITS`) of its needles' heads.
    windows : numpy.ndarray
        The needles' text as 8-byte windows (see :func:`_byte_windows`).

    """

    needles: Ints
    keys: Ints
    row_bits: U64
    windows: U64

    @classmethod
    def of(cls, own: _OwnValues) -> _NeedleIndex:
        needles = np.flatnonzero(own.first_word > 0)
        rows = own.rows[needles]
        heads = _heads(own.data, own.starts[needles])
        keys = (rows << 16) | heads.astype(np.int64)
        order = np.argsort(keys, kind="stable")
        row_bits = np.zeros(own.row_count, dtype=np.uint64)
        if needles.size:
            group = np.flatnonzero(np.diff(rows, prepend=-1))
            bits = _HEAD_BITS[heads]
            row_bits[rows[group]] = np.bitwise_or.reduceat(bits, group)
        return cls(needles[order], keys[order], row_bits, _byte_windows(own.data))


@dataclass(frozen=True)
class _Spans:
    """Needles of one column: rows, byte spans into ``data``, first-word lengths."""

    rows: Ints
    starts: Ints
    ends: Ints
    first_word: Ints
    data: U8


def _own_values(sources: Sequence[tuple[Column, pa.Array]]) -> _OwnValues:
    """Collect the identifier values a row's free text must not contain.

    ``sources`` are identifier columns for which :func:`_is_needle_source`
    holds, with their text. Names contribute each of their words (titles and
    single letters left out); other columns contribute their whole value
    where it holds a letter (a street address, a city). Columns whose values
    have a shape the patterns recognise (phone, email, SSN, ZIP, record and
    account numbers, URL, IP address) are left to the patterns, which catch
    them in any spelling.
    """
    found: list[_Spans] = []
    names: list[str] = []
    tags: list[str] = []
    row_count = len(sources[0][1]) if sources else 0
    for column, values in sources:
        lowered = pc.utf8_lower(values)
        spans = _name_words(lowered) if column.phi == "name" else _whole_values(lowered)
        if len(spans.rows):
            found.append(spans)
            names.append(column.name)
            tags.append(_OWN_VALUE_TAGS.get(column.phi or "", _UNKNOWN_TAG))
    if not found:
        return _OwnValues.empty(row_count)
    bases = np.cumsum([0] + [f.data.size for f in found])[:-1]
    rows = np.concatenate([f.rows for f in found])
    order = np.argsort(rows, kind="stable")

    def joined(field: str, base: bool) -> Ints:
        parts = [
            getattr(f, field) + (b if base else 0)
            for f, b in zip(found, bases, strict=True)
        ]
        return np.concatenate(parts)[order]

    source = np.repeat(np.arange(len(found)), [len(f.rows) for f in found])
    return _OwnValues(
        row_count=row_count,
        rows=rows[order],
        starts=joined("starts", base=True),
        ends=joined("ends", base=True),
        first_word=joined("first_word", base=False),
        data=np.concatenate([f.data for f in found]),
        source_index=source[order],
        sources=tuple(names),
        tags=tuple(tags),
    )


def _name_words(lowered: pa.Array) -> _Spans:
    """Each word of each name (non-ASCII characters count as letters)."""
    offsets, data = _buffers(lowered)
    starts, ends, rows = _words(_char_classes(data, non_ascii=_LETTER), offsets)
    keep = (ends - starts >= _MIN_NAME_WORD) & ~_is_title(data, starts, ends)
    ascii_name = pc.fill_null(pc.string_is_ascii(lowered), True).to_numpy(
        zero_copy_only=False
    )
    first_word = np.where(ascii_name[rows], ends - starts, 0)
    return _Spans(rows[keep], starts[keep], ends[keep], first_word[keep], data)


def _is_title(data: U8, starts: Ints, ends: Ints) -> Bools:
    """Whether each word is a title or suffix such as ``dr`` or ``jr``."""
    return np.isin(_short_word_codes(data, starts, ends), _TITLE_CODES)


def _short_word_codes(data: U8, starts: Ints, ends: Ints) -> Ints:
    """Pack words of up to 4 bytes into one integer (-1 for longer words)."""
    lengths = ends - starts
    if not data.size:
        return np.full(starts.size, -1, dtype=np.int64)
    code = np.zeros(starts.size, dtype=np.int64)
    for offset in range(4):
        byte = data[np.minimum(starts + offset, data.size - 1)].astype(np.int64)
        code |= np.where(lengths > offset, byte, 0) << (8 * offset)
    return np.where(lengths <= 4, code, -1)


_TITLE_WORDS = _TITLES.split()
_TITLE_CODES = _short_word_codes(
    np.frombuffer("".join(_TITLE_WORDS).encode(), np.uint8),
    np.cumsum([0] + [len(t) for t in _TITLE_WORDS])[:-1],
    np.cumsum([len(t) for t in _TITLE_WORDS]),
)


def _whole_values(lowered: pa.Array) -> _Spans:
    """Whole values (trimmed) of 3 characters or more that hold a letter."""
    offsets, data = _buffers(pc.utf8_trim_whitespace(lowered))
    classes = _char_classes(data)
    non_ascii = (data >= 0x80).view(np.uint8)
    flags = (classes == _LETTER).view(np.uint8) | (non_ascii << np.uint8(1))
    seen = _per_value(np.bitwise_or, flags, offsets)  # 1: a letter, 2: not ASCII
    rows = np.flatnonzero((np.diff(offsets) >= _MIN_OWN_VALUE) & (seen != 0))
    starts, ends = offsets[rows], offsets[rows + 1]
    edge, _ = _class_edges(classes, offsets)
    bounds = np.flatnonzero(edge)
    word_end = bounds[np.searchsorted(bounds, starts, side="right")]
    starts_word = (classes[starts] != _OTHER) & ((seen[rows] & 2) == 0)
    first_word = np.where(starts_word, word_end - starts, 0)
    return _Spans(rows.astype(np.int64), starts, ends, first_word, data)


@dataclass(frozen=True)
class _Hits:
    """Whole-word occurrences of needles: byte spans and the needle of each."""

    starts: Ints
    ends: Ints
    needles: Ints

    @classmethod
    def join(cls, parts: Sequence[_Hits]) -> _Hits:
        if not parts:
            nothing = np.zeros(0, np.int64)
            return cls(nothing, nothing, nothing)
        return cls(
            np.concatenate([p.starts for p in parts]),
            np.concatenate([p.ends for p in parts]),
            np.concatenate([p.needles for p in parts]),
        )


def _find_own_values(lowered: pa.Array, own: _OwnValues) -> tuple[_Hits, Ints]:
    """Find each row's needles in its (lowercased) text, as whole words.

    Returns the hits in ASCII rows, found vectorised, and the rows that need
    the per-row path (text that is not ASCII, or a needle that does not start
    with an ASCII letter or digit). A hit is a needle's bytes where a word of
    its row starts, ending where a word ends (or with a byte that is neither
    a letter nor a digit). The candidates are the words that start with the
    first 2 bytes (the head) of one of their row's needles.
    """
    offsets, data = _buffers(lowered)
    ascii_rows = pc.fill_null(pc.string_is_ascii(lowered), True).to_numpy(
        zero_copy_only=False
    )
    slow_rows = np.unique(own.rows[(own.first_word == 0) | ~ascii_rows[own.rows]])
    index = own.index
    if not index.needles.size:
        return _Hits.join([]), slow_rows
    classes = _char_classes(data)
    starts = _word_starts(classes, offsets)
    begin, row, needle = _candidates(starts, offsets, data, index, slow_rows)
    end = begin + own.ends[needle] - own.starts[needle]
    row_end = offsets[row + 1]
    fits = np.flatnonzero(end <= row_end)
    begin, end, row_end, needle = begin[fits], end[fits], row_end[fits], needle[fits]
    ok = _same_bytes(
        _byte_windows(data), begin, index.windows, own.starts[needle], end - begin
    )
    last_class = _char_classes(own.data[own.ends[needle] - 1])
    next_class = classes[np.minimum(end, max(data.size - 1, 0))]
    ok &= (end >= row_end) | (last_class == _OTHER) | (next_class != last_class)
    return _Hits(begin[ok], end[ok], needle[ok]), slow_rows


def _candidates(
    starts: Ints, offsets: Ints, data: U8, index: _NeedleIndex, slow_rows: Ints
) -> tuple[Ints, Ints, Ints]:
    """(word start, row, needle) where a word starts with a needle of its row's head.

    The row's bits rule most words out cheaply; the rest are joined with the
    needles on (row, head). Rows on the per-row path are left out.
    """
    word_row = _row_of(starts, offsets)
    heads = _heads(data, starts)
    maybe = np.flatnonzero(index.row_bits[word_row] & _HEAD_BITS[heads])
    if slow_rows.size:
        slow = np.zeros(len(offsets) - 1, dtype=bool)
        slow[slow_rows] = True
        maybe = maybe[~slow[word_row[maybe]]]
    row = word_row[maybe].astype(np.int64)
    keys = (row << 16) | heads[maybe].astype(np.int64)
    low = np.searchsorted(index.keys, keys, side="left")
    count = np.searchsorted(index.keys, keys, side="right") - low
    needle = index.needles[np.repeat(low, count) + _ramp(count)]
    return np.repeat(starts[maybe], count), np.repeat(row, count), needle


def _heads(data: U8, positions: Ints) -> npt.NDArray[np.uint16]:
    """The 2 bytes from each of ``positions`` as one number (its head).

    Past the end of ``data`` a byte counts as 0.
    """
    padded = np.zeros(data.size + 1, dtype=np.uint8)
    padded[: data.size] = data
    first = padded[positions].astype(np.uint16) << np.uint16(8)
    second = padded[positions + 1].astype(np.uint16)
    heads: npt.NDArray[np.uint16] = first | second
    return heads


def _head_bit_table() -> U64:
    heads = np.arange(1 << 16, dtype=np.int64)
    bit = ((heads * 40503) & 0xFFFF) >> 10  # the top 6 bits of a 16-bit product
    return np.left_shift(np.uint64(1), bit.astype(np.uint64))


_HEAD_BITS = _head_bit_table()
"""One of 64 bits for each 2-byte head (a multiplicative hash)."""


_LOW_BYTES = np.array(
    [(1 << (8 * n)) - 1 for n in range(8)] + [(1 << 64) - 1], dtype=np.uint64
)
"""``_LOW_BYTES[n]`` keeps the first ``n`` bytes of a little-endian 8-byte word."""


def _same_bytes(
    windows: U64, starts: Ints, other_windows: U64, other_starts: Ints, lengths: Ints
) -> Bools:
    """Whether ``data[s:s+n] == other[t:t+n]`` for each (s, t, n), 8 bytes at a time.

    ``windows`` and ``other_windows`` are :func:`_byte_windows` of the two
    buffers; every span must lie inside its buffer.
    """
    same = np.ones(starts.size, dtype=bool)
    pending = np.flatnonzero(lengths > 0)
    offset = 0
    while pending.size:
        left = np.minimum(lengths[pending] - offset, 8)
        differ = (
            windows[starts[pending] + offset]
            ^ other_windows[other_starts[pending] + offset]
        ) & _LOW_BYTES[left]
        equal = differ == 0
        same[pending[~equal]] = False
        offset += 8
        pending = pending[equal & (lengths[pending] > offset)]
    return same


def _byte_windows(data: U8) -> U64:
    """The 8 bytes from each position of ``data`` as one little-endian integer."""
    padded = np.zeros(data.size + 8, dtype=np.uint8)
    padded[: data.size] = data
    windows: U64 = np.ndarray(
        (data.size,), dtype=np.dtype("<u8"), buffer=padded, strides=(1,)
    )
    return windows


def _first_non_overlapping(hits: _Hits) -> _Hits:
    """Keep hits that do not overlap an earlier (or, at one start, longer) hit.

    Of two equal hits (two needles with the same text), the first needle's
    is kept.
    """
    if not hits.starts.size:
        return hits
    order = np.lexsort((hits.needles, hits.starts - hits.ends, hits.starts))
    starts, ends = hits.starts[order], hits.ends[order]
    reach = np.maximum.accumulate(ends)
    keep = np.ones(starts.size, dtype=bool)
    keep[1:] = starts[1:] >= reach[:-1]
    return _Hits(starts[keep], ends[keep], hits.needles[order][keep])


def _mark_own_values(
    notes: pa.Array, own: _OwnValues, counts: Counter[str]
) -> pa.Array:
    """Overwrite each row's own values in its text with their tag's placeholder."""
    hits, slow_rows = _find_own_values(pc.ascii_lower(notes), own)
    hits = _first_non_overlapping(hits)
    offsets, data = _buffers(notes)
    marked = data.copy()
    lengths = hits.ends - hits.starts
    placeholder = np.array([_PLACEHOLDERS[tag] for tag in own.tags], dtype=np.uint8)
    marked[np.repeat(hits.starts, lengths) + _ramp(lengths)] = np.repeat(
        placeholder[own.source_index[hits.needles]], lengths
    )
    result = _text_from(offsets, marked, notes)
    if not slow_rows.size:
        return result
    originals = notes.take(pa.array(slow_rows)).to_pylist()
    changed = [
        _scrub_row(text, needles, own, counts)
        for text, needles in zip(originals, _row_needles(own, slow_rows), strict=True)
    ]
    mask = np.zeros(len(notes), dtype=bool)
    mask[slow_rows] = True
    return pc.replace_with_mask(result, pa.array(mask), pa.array(changed, TEXT))


def _row_needles(own: _OwnValues, rows: Ints) -> list[list[tuple[str, int]]]:
    """(needle, source index) of each of ``rows``, longest needle first."""
    first = np.searchsorted(own.rows, rows, side="left")
    last = np.searchsorted(own.rows, rows, side="right")
    out = []
    for begin, end in zip(first.tolist(), last.tolist(), strict=True):
        index = np.arange(begin, end)
        needles = own.texts(index).to_pylist()
        sources = own.source_index[index].tolist()
        pairs = sorted(zip(needles, sources, strict=True), key=lambda p: -len(p[0]))
        out.append(pairs)
    return out


def _scrub_row(
    text: str | None,
    needles: list[tuple[str, int]],
    own: _OwnValues,
    counts: Counter[str],
) -> str | None:
    for needle, source in needles:
        if text is None:
            break
        tag = own.tags[source]
        text, replaced = replace_words(text, needle, tag)
        counts[tag] += replaced
    return text


def replace_words(text: str, needle: str, tag: str) -> tuple[str, int]:
    """Replace whole-word, case-insensitive occurrences of ``needle`` by ``tag``.

    A word is a run of letters or a run of digits: ``needle`` must not
    continue a run of its first or last character's kind.

    Parameters
    ----------
    text : str
        The text.
    needle : str
        Lowercase text to find.
    tag : str
        The replacement.

    Returns
    -------
    text : str
        The new text.
    count : int
        How many occurrences were replaced.

    """
    pieces: list[str] = []
    start = 0
    for begin, end in _word_spans(text, needle):
        pieces += [text[start:begin], tag]
        start = end
    if not pieces:
        return text, 0
    pieces.append(text[start:])
    return "".join(pieces), len(pieces) // 2


def _word_spans(text: str, needle: str) -> list[tuple[int, int]]:
    found = re.finditer(re.escape(needle), text, re.IGNORECASE)
    return [m.span() for m in found if _bounded(text, m.start(), m.end())]


def _char_class(char: str) -> int:
    if char.isalpha():
        return _LETTER
    return _DIGIT if char.isdigit() else _OTHER


def _bounded(text: str, begin: int, end: int) -> bool:
    """Whether ``text[begin:end]`` does not continue a word on either side."""
    first, last = _char_class(text[begin]), _char_class(text[end - 1])
    before = begin == 0 or first == _OTHER or _char_class(text[begin - 1]) != first
    after = end == len(text) or last == _OTHER or _char_class(text[end]) != last
    return before and after


# --- (2) identifier patterns --------------------------------------------------


def scrub_free_text(
    notes: pa.Array, own_values: _OwnValues | None = None
) -> tuple[pa.Array, Counter[str]]:
    """Remove identifiers from free text.

    Each row's own identifier values (the words of the patient's name, the
    street address, the city, ...) are replaced by their tag (``[NAME]``,
    ``[LOCATION]``) wherever they stand as whole words, in any case; then
    every match of :data:`IDENTIFIER_PATTERNS` by its tag (``[PHONE]``,
    ``[SSN]``, ``[DATE]``, ``[EMAIL]``, ``[MRN]``, ``[ADDRESS]``, ...).

    Parameters
    ----------
    notes : pyarrow.Array
        The free text, one value per row.
    own_values : optional
        The rows' own identifier values (built by :func:`deidentify`).

    Returns
    -------
    notes : pyarrow.Array
        The scrubbed text.
    counts : collections.Counter
        Replacements per tag.

    """
    notes = _plain(notes)

    def scrub(rows: slice) -> tuple[pa.Array, Counter[str], Counter[str]]:
        own = None if own_values is None else own_values.in_rows(rows)
        marking: Counter[str] = Counter()
        part = notes.slice(rows.start, rows.stop - rows.start)
        text, counts = _scrub_patterns(_mark_free_text(part, own, marking))
        return text, marking, counts

    done = _in_parallel([partial(scrub, rows) for rows in _row_blocks(len(notes))])
    counts: Counter[str] = Counter()
    for _, marking, _ in done:
        counts.update(marking)
    for _, _, pattern_counts in done:
        counts.update(pattern_counts)
    texts = [text for text, _, _ in done]
    return (texts[0] if len(texts) == 1 else pa.concat_arrays(texts)), counts


def _mark_free_text(
    notes: pa.Array, own_values: _OwnValues | None, counts: Counter[str]
) -> pa.Array:
    """Step 1: neutralise control bytes, mark each row's own values."""
    notes = _plain(notes)
    if pc.any(pc.match_substring_regex(notes, _CONTROL)).as_py():
        notes = pc.replace_substring_regex(notes, _CONTROL, " ")
    if own_values is not None and len(own_values):
        notes = _mark_own_values(notes, own_values, counts)
    return notes


def _scrub_patterns(notes: pa.Array) -> tuple[pa.Array, Counter[str]]:
    """Replace pattern matches and own-value placeholders by their tags.

    One RE2 pass wraps each match in NUL bytes; split on them, each value
    becomes a list whose odd items are the matches, which are classified,
    swapped for their tags, and joined back.
    """
    counts: Counter[str] = Counter()
    marked = pc.replace_substring_regex(notes, _SCRUB_PATTERN, f"{_MARK}\\0{_MARK}")
    pieces = pc.split_pattern(marked, _MARK)
    flat = pc.list_flatten(pieces)
    if len(flat) == len(notes) - notes.null_count:
        return notes, counts  # no match anywhere
    # A value's odd items (counting from 0 within its list) are its matches.
    parent = pc.list_parent_indices(pieces).to_numpy()
    starts = pieces.offsets.to_numpy()
    position = np.arange(len(flat)) + starts[0] - starts[parent]
    is_match = pa.array(position % 2 == 1)
    kinds = _classify(flat.filter(is_match))
    for kind, number in enumerate(np.bincount(kinds, minlength=len(_KIND_TAGS))):
        if number:
            counts[_KIND_TAGS[kind]] += int(number)
    tags = pa.array(_KIND_TAGS, TEXT).take(kinds)
    tagged = pc.replace_with_mask(flat, is_match, tags)
    rebuilt = pa.ListArray.from_arrays(pieces.offsets, tagged, mask=pieces.is_null())
    return pc.binary_join(rebuilt, pa.scalar("", TEXT)), counts


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


_LETTER_FLAG, _DIGIT_FLAG, _PLACEHOLDER_FLAG = 1, 2, 4


def _match_flag_table() -> U8:
    table = np.zeros(256, dtype=np.uint8)
    table[ord("a") : ord("z") + 1] = _LETTER_FLAG
    table[ord("A") : ord("Z") + 1] = _LETTER_FLAG
    table[ord("0") : ord("9") + 1] = _DIGIT_FLAG
    table[1 : len(_PLACEHOLDERS) + 1] = _PLACEHOLDER_FLAG
    return table


_MATCH_FLAGS = _match_flag_table()


def _per_value(ufunc: np.ufunc, flags: U8, offsets: Ints) -> U8:
    """``ufunc`` over the bytes of each value of a string array (0 if empty)."""
    result = np.zeros(len(offsets) - 1, dtype=flags.dtype)
    filled = offsets[1:] > offsets[:-1]
    if flags.size:
        result[filled] = ufunc.reduceat(flags, offsets[:-1][filled])
    return result


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


# --- k-anonymity --------------------------------------------------------------


def k_anonymity(
    frame: pd.DataFrame, quasi_identifiers: Sequence[str], k: int | None = None
) -> tuple[KAnonymity, Ints]:
    """Measure k-anonymity over ``quasi_identifiers`` (missing is a value too).

    Parameters
    ----------
    frame : pandas.DataFrame
        De-identified rows.
    quasi_identifiers : sequence of str
        Columns of ``frame``.
    k : int, optional
        Threshold for ``rows_below_k``.

    Returns
    -------
    report : KAnonymity
        Smallest group, number of groups, rows below ``k``.
    sizes : numpy.ndarray
        Size of each row's group.

    """
    rows = len(frame)
    if not quasi_identifiers or rows == 0:
        sizes = np.full(rows, rows, dtype=np.int64)
        groups = 1 if rows else 0
    else:
        group = np.zeros(rows, dtype=np.int64)
        for name in quasi_identifiers:
            codes, uniques = pd.factorize(frame[name], use_na_sentinel=False)
            group, _ = pd.factorize(group * len(uniques) + codes)
        counts = np.bincount(group)
        sizes = counts[group]
        groups = len(counts)
    below = int((sizes < k).sum()) if k is not None else 0
    report = KAnonymity(
        quasi_identifiers=tuple(quasi_identifiers),
        k=k,
        min_group_size=int(sizes.min()) if rows else 0,
        groups=groups,
        rows_below_k=below,
    )
    return report, sizes


def _k_anonymise(
    frame: pd.DataFrame, quasi_identifiers: Sequence[str], k: int | None
) -> tuple[pd.DataFrame, KAnonymity, Ints]:
    """Suppress rows in groups smaller than ``k``; return the kept positions."""
    before, sizes = k_anonymity(frame, quasi_identifiers, k)
    everything = np.arange(len(frame), dtype=np.int64)
    if k is None or before.rows_below_k == 0:
        return frame, before, everything
    kept = everything[sizes >= k]
    remaining = frame.iloc[kept]
    after, _ = k_anonymity(remaining, quasi_identifiers, k)
    after = KAnonymity(
        quasi_identifiers=after.quasi_identifiers,
        k=k,
        min_group_size=after.min_group_size,
        groups=after.groups,
        rows_below_k=before.rows_below_k,
    )
    return remaining, after, kept


# --- the residual-identifier scan ---------------------------------------------


@dataclass(frozen=True)
class Finding:
    """Something identifier-like in de-identified data (never the value itself).

    Attributes
    ----------
    column : str
        Where it was found.
    kind : str
        A pattern kind (``"phone"``, ``"ssn"``, ...) or ``"identifier_value"``
        for a raw identifier value found as it was.
    rows : int
        How many rows hold one.
    source : str or None
        For ``identifier_value``: the raw identifier column it came from.

    """

    column: str
    kind: str
    rows: int
    source: str | None = None

    def describe(self) -> str:
        """One line naming the column and the kind of identifier."""
        if self.source is not None:
            what = f"a value of identifier column {self.source!r}"
        else:
            what = _PATTERN_BY_KIND[self.kind].description
        return f"column {self.column!r}: {self.rows:,} rows hold {what} ({self.kind})"


_PATTERN_BY_KIND = {p.kind: p for p in IDENTIFIER_PATTERNS}

_Leaks = dict[tuple[str, str], Ints]
"""Rows (positions) whose cell in a column holds one of the row's own values
of an identifier column: ``(column, identifier column) -> rows``."""


def scan_residual_identifiers(
    frame: pd.DataFrame,
    schema: DatasetSchema,
    *,
    raw_identifier_values: pd.DataFrame | None = None,
) -> list[Finding]:
    """Look for anything identifier-like left in de-identified data.

    Every text column is searched for :data:`IDENTIFIER_PATTERNS`. With the
    raw identifiers, each free-text value is also searched for its own row's
    identifier values (as :func:`deidentify` scrubs them), and every other
    text column for cells equal to one of their row's identifier values.

    Parameters
    ----------
    frame : pandas.DataFrame
        De-identified data.
    schema : DatasetSchema
        The raw schema it was prepared under (or its de-identified schema,
        which finds patterns only).
    raw_identifier_values : pandas.DataFrame, optional
        The raw export (or just its identifier columns), with the same index
        labels as ``frame`` for the rows ``frame`` kept.

    Returns
    -------
    list of Finding
        Empty if nothing was found.

    """
    findings = _pattern_findings(frame)
    if raw_identifier_values is None or schema.stage != "raw":
        return findings
    raw = _aligned(raw_identifier_values, frame)
    sources = [c for c in schema.columns if c.name in raw.columns]
    sources = [c for c in sources if _is_needle_source(c)]
    checked = [
        (c.name, c.role == "free_text")
        for c in schema.deidentified().columns
        if c.name in frame.columns and c.kind == "string"
    ]
    source_text = {c.name: _text_chunks(raw[c.name]) for c in sources}
    checked_text = {name: _text_chunks(frame[name]) for name, _ in checked}

    def leaks_in(rows: slice) -> _Leaks:
        own = _own_values([(c, _text_rows(source_text[c.name], rows)) for c in sources])
        cells = {
            name: (_text_rows(checked_text[name], rows), free_text)
            for name, free_text in checked
        }
        return _value_leaks(cells, own, rows.start)

    parts = _in_parallel([partial(leaks_in, rows) for rows in _row_blocks(len(frame))])
    return findings + _value_findings(_merged(parts), checked, sources, kept=None)


def _aligned(raw: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    if raw.index.equals(frame.index):
        return raw
    if not raw.index.is_unique:
        raise ConfigError(
            "the raw identifier values need a unique index to line up with the "
            "de-identified rows"
        )
    return raw.reindex(frame.index)


def _pattern_findings(frame: pd.DataFrame) -> list[Finding]:
    """Rows of each text column that match each of :data:`IDENTIFIER_PATTERNS`."""
    names = [name for name in frame.columns if _is_text_column(frame[name])]
    parts = [
        (name, part) for name in names for part in _halves(_text_chunks(frame[name]))
    ]
    counts = _in_parallel([partial(_pattern_rows, part) for _, part in parts])
    total = {name: np.zeros(len(IDENTIFIER_PATTERNS), np.int64) for name in names}
    for (name, _), rows in zip(parts, counts, strict=True):
        total[name] += rows
    return [
        Finding(str(name), pattern.kind, int(rows))
        for name in names
        for pattern, rows in zip(IDENTIFIER_PATTERNS, total[name], strict=True)
        if rows
    ]


def _is_text_column(values: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return False
    return is_text(values.dropna() if values.dtype == object else values)


def _pattern_rows(values: pa.ChunkedArray) -> Ints:
    """How many values match each of :data:`IDENTIFIER_PATTERNS`."""
    if values.num_chunks > _MAX_CHUNKS:  # a kernel compiles its regex per chunk
        values = pa.chunked_array([values.combine_chunks()])
    rows = np.zeros(len(IDENTIFIER_PATTERNS), dtype=np.int64)
    if not pc.any(pc.match_substring_regex(values, _COMBINED)).as_py():
        return rows
    for kind, pattern in enumerate(IDENTIFIER_PATTERNS):
        rows[kind] = int(
            pc.sum(pc.match_substring_regex(values, pattern.regex)).as_py() or 0
        )
    return rows


def _value_leaks(
    cells: Mapping[str, tuple[pa.Array, bool]], own: _OwnValues, first_row: int
) -> _Leaks:
    """Rows of one block whose cells hold one of the row's own values.

    ``cells`` maps each text column of the output to its values in the block
    and whether it is free text (searched word by word) or not (compared
    whole); ``own`` are the block's needles, ``first_row`` its first row.
    """
    leaks: _Leaks = {}
    if not len(own):
        return leaks
    for name, (values, free_text) in cells.items():
        find = _own_value_rows if free_text else _whole_value_rows
        for source, rows in find(values, own).items():
            leaks[(name, source)] = rows + first_row
    return leaks


def _merged(parts: Sequence[_Leaks]) -> _Leaks:
    keys = {key for part in parts for key in part}
    return {
        key: np.concatenate([part[key] for part in parts if key in part])
        for key in keys
    }


def _value_findings(
    leaks: _Leaks,
    checked: Sequence[tuple[str, bool]],
    sources: Sequence[Column],
    *,
    kept: Ints | None,
) -> list[Finding]:
    """One finding per (column, identifier column) with leaks in kept rows."""
    findings = []
    for name, _ in checked:
        for source in sources:
            rows = leaks.get((name, source.name))
            if rows is None:
                continue
            if kept is not None:
                rows = rows[np.isin(rows, kept)]
            if rows.size:
                findings.append(
                    Finding(name, "identifier_value", int(rows.size), source.name)
                )
    return findings


def _by_source(pairs: set[tuple[int, int]], own: _OwnValues) -> dict[str, Ints]:
    """Distinct rows per source column, from (row, source index) pairs."""
    rows: dict[str, list[int]] = {}
    for row, source in sorted(pairs):
        rows.setdefault(own.sources[source], []).append(row)
    return {source: np.array(found, dtype=np.int64) for source, found in rows.items()}


def _own_value_rows(values: pa.Array, own: _OwnValues) -> dict[str, Ints]:
    """Rows whose free text still holds one of the row's own identifier values."""
    hits, slow_rows = _find_own_values(pc.ascii_lower(values), own)
    leaked: set[tuple[int, int]] = set()
    if hits.starts.size:
        offsets, _ = _buffers(values)
        rows = np.searchsorted(offsets, hits.starts, side="right") - 1
        suspects = np.unique(rows)
        texts = dict(
            zip(
                suspects.tolist(),
                values.take(pa.array(suspects)).to_pylist(),
                strict=True,
            )
        )
        for row, begin, end, needle in zip(
            rows.tolist(),
            (hits.starts - offsets[rows]).tolist(),
            (hits.ends - offsets[rows]).tolist(),
            hits.needles.tolist(),
            strict=True,
        ):
            if not _inside_tag(texts[row] or "", begin, end):
                leaked.add((row, int(own.source_index[needle])))
    if slow_rows.size:
        texts_slow = values.take(pa.array(slow_rows)).to_pylist()
        for row, text, needles in zip(
            slow_rows.tolist(), texts_slow, _row_needles(own, slow_rows), strict=True
        ):
            for needle, source in needles:
                spans = [] if text is None else _word_spans(text, needle)
                if any(not _inside_tag(text or "", b, e) for b, e in spans):
                    leaked.add((row, source))
    return _by_source(leaked, own)


_TAGS = frozenset(_KIND_TAGS)


def _inside_tag(text: str, begin: int, end: int) -> bool:
    """Whether ``text[begin:end]`` is part of a scrub tag such as ``[NAME]``."""
    left = text.rfind("[", 0, begin + 1)
    right = text.find("]", max(end - 1, 0))
    return left >= 0 and right >= 0 and text[left : right + 1] in _TAGS


def _whole_value_rows(values: pa.Array, own: _OwnValues) -> dict[str, Ints]:
    """Rows whose cell of a non-free-text column equals one of the row's own values."""
    cells = pc.utf8_lower(pc.utf8_trim_whitespace(values))
    widths = pc.fill_null(pc.binary_length(cells), -1).to_numpy(zero_copy_only=False)
    lengths = own.ends - own.starts
    same_width = np.flatnonzero(
        (lengths == widths[own.rows]) & (lengths >= _MIN_OWN_VALUE)
    )
    if not same_width.size:
        return {}
    equal = pc.equal(own.texts(same_width), cells.take(pa.array(own.rows[same_width])))
    found = same_width[pc.fill_null(equal, False).to_numpy(zero_copy_only=False)]
    leaked = {
        (int(r), int(s))
        for r, s in zip(own.rows[found], own.source_index[found], strict=True)
    }
    return _by_source(leaked, own)


def check_residual_identifiers(
    frame: pd.DataFrame,
    schema: DatasetSchema,
    *,
    raw_identifier_values: pd.DataFrame | None = None,
) -> None:
    """Fail closed if :func:`scan_residual_identifiers` finds anything.

    Raises
    ------
    IdentifierLeakError
        Naming the column and the kind of identifier (never the value).

    """
    _fail_closed(
        scan_residual_identifiers(
            frame, schema, raw_identifier_values=raw_identifier_values
        )
    )


def _fail_closed(findings: Sequence[Finding]) -> None:
    if findings:
        more = f" (and {len(findings) - 1} more findings)" if len(findings) > 1 else ""
        raise IdentifierLeakError(
            f"residual identifiers after de-identification: {findings[0].describe()}"
            f"{more}; nothing was written. Drop or scrub that column in the schema, "
            "or clean the export"
        )


def deidentify_checked(
    frame: pd.DataFrame,
    schema: DatasetSchema,
    secrets: DeidSecrets,
    *,
    k: int | None = None,
    restricted_zip3: RestrictedZip3 = RESTRICTED_ZIP3,
) -> tuple[pd.DataFrame, DeidReport]:
    """Validate, de-identify and scan a raw export; fail closed on any leak.

    The scan is :func:`scan_residual_identifiers` with the raw identifiers:
    the patterns over every text column of the result, and each row's own
    identifier values over its text cells, looked for block by block as the
    blocks are de-identified (the block's needles are built once for both).

    Parameters are those of :func:`deidentify`.

    Returns
    -------
    frame : pandas.DataFrame
        De-identified data matching ``schema.deidentified()``.
    report : DeidReport
        What was done.

    Raises
    ------
    SchemaError
        If ``frame`` does not match ``schema``.
    IdentifierLeakError
        If anything identifier-like is left; nothing should then be written.

    """
    result = _deidentify(frame, schema, secrets, k, restricted_zip3, checked=True)
    checked = [
        (c.name, c.role == "free_text") for c in schema.columns if _output_is_text(c)
    ]
    sources = [c for c in schema.columns if _is_needle_source(c)]
    findings = _pattern_findings(result.frame)
    findings += _value_findings(result.leaks, checked, sources, kept=result.kept)
    _fail_closed(findings)
    return result.frame, result.report
