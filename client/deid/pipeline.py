"""The de-identification pipeline: :func:`deidentify` and :func:`deidentify_checked`.

This module owns the orchestration of one de-identification: checking the
request, applying each column's ``deid`` action (the text columns a block
of rows at a time on worker threads, see :class:`_RowsJob` and
:func:`_deidentify_rows`, while this thread does the dates and ages),
joining the blocks, suppressing rows for k-anonymity, building the
:class:`~hospfed.client.deid.report.DeidReport`, and, in
:func:`deidentify_checked`, validating the contract alongside and failing
closed on the residual scan's findings (the rows' own values are looked for
block by block, with the needles each block already built).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from hospfed.client.deid.ages import age_band_dates, band_reference_years
from hospfed.client.deid.blocks import (
    _WORKERS,
    _row_blocks,
    _text_chunks,
    _text_rows,
)
from hospfed.client.deid.columns import _shifted, pseudonymise, zip3
from hospfed.client.deid.kanon import _k_anonymise
from hospfed.client.deid.needles import _is_needle_source, _own_values
from hospfed.client.deid.profile import profile_kept_columns
from hospfed.client.deid.report import DeidReport
from hospfed.client.deid.residual import (
    _fail_closed,
    _Leaks,
    _merged,
    _shape_findings,
    _value_findings,
    _value_leaks,
)
from hospfed.client.deid.scrub import OwnWords, _scrub_block
from hospfed.client.deid.settings import (
    DEFAULT_K,
    RESTRICTED_ZIP3,
    DeidSecrets,
    RestrictedZip3,
)
from hospfed.client.deid.summary import _report, _Tally
from hospfed.client.deid.textbuf import TEXT, Ints
from hospfed.common.errors import ConfigError, IdentifierLeakError, SchemaError
from hospfed.common.schema import (
    AGE_CAP,
    Column,
    DatasetSchema,
    parse_dates,
    text_array,
)


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
        than ``k`` rows are suppressed. If not, the data must be
        :data:`~hospfed.client.deid.settings.DEFAULT_K`-anonymous as it is
        (else :class:`IdentifierLeakError`): rows are suppressed only when
        asked. ``k = 1`` turns the check off.
    restricted_zip3 : RestrictedZip3
        The ZIP prefixes that become ``000``.

    Returns
    -------
    frame : pandas.DataFrame
        Columns of ``schema.deidentified()``, rows in their original order
        with their original index labels (so the raw identifiers can be
        aligned for :func:`.scan_residual_identifiers`; write it without the
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
    IdentifierLeakError
        If ``k`` was not given and some rows are in quasi-identifier groups
        smaller than :data:`~hospfed.client.deid.settings.DEFAULT_K`.

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
                tally.reviewed = profile_kept_columns(frame, schema)
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
    out, anonymity, kept = _k_anonymise(out, quasi_identifiers, k or DEFAULT_K)
    if k is None and anonymity.rows_below_k:
        raise IdentifierLeakError(
            f"k-anonymity: {anonymity.rows_below_k:,} rows are in groups of fewer "
            f"than {DEFAULT_K} patients sharing the quasi-identifiers "
            f"{', '.join(quasi_identifiers)}: generalise or drop them in the "
            f"schema, or suppress those rows by asking for k = {DEFAULT_K} "
            "explicitly (--k); nothing was written"
        )
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
    """The kept columns and those done whole (dates, ages), by name.

    Kept dates that would give away an age over 89 are moved into the "90+"
    band (:mod:`.ages`).
    """
    columns = {
        c.name: _deidentified(frame, c, schema, secrets, tally)
        for c in schema.columns
        if c.action != "drop" and c.name not in job.produced_names
    }
    dated = [c.name for c in schema.columns if c.action in ("year", "shift")]
    if dated:
        reference = band_reference_years(frame, schema)
        banded, tally.dates_banded = age_band_dates(
            {name: columns[name] for name in dated}, reference, schema
        )
        columns.update(banded)
    return columns


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

_PRODUCED = ("pseudonymise", "zip3", "scrub")
"""Actions done block by block; they all give text."""


def _output_is_text(column: Column) -> bool:
    """Whether the de-identified column is text (so the scan looks at it)."""
    return column.action in _PRODUCED or (
        column.action == "keep" and column.kind == "string"
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
    sources = [(c, text[c.name]) for c in job.sources]
    scrubbing = any(c.action == "scrub" for c in job.produced)
    own_words = OwnWords.of(sources) if scrubbing else None
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
            columns[column.name], counts = _scrub_block(values, own_words)
            patterns.update(counts)
    output = {
        name: (columns[name] if name in columns else text[name], free_text)
        for name, free_text in job.checked
    }
    leaks: _Leaks = {}
    if output:  # the residual check's own search, apart from the scrub's
        leaks = _value_leaks(output, _own_values(sources), rows.start)
    return _RowsDone(columns, marking, patterns, restricted, leaks)


def deidentify_checked(
    frame: pd.DataFrame,
    schema: DatasetSchema,
    secrets: DeidSecrets,
    *,
    k: int | None = None,
    restricted_zip3: RestrictedZip3 = RESTRICTED_ZIP3,
) -> tuple[pd.DataFrame, DeidReport]:
    """Validate, de-identify and scan a raw export; fail closed on any leak.

    The scan is :func:`.scan_residual_identifiers` with the raw identifiers:
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
    findings = _shape_findings(result.frame, schema)
    findings += _value_findings(result.leaks, checked, sources, kept=result.kept)
    _fail_closed(findings)
    return result.frame, result.report
