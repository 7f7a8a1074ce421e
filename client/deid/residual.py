"""The residual-identifier scan: anything identifier-like left after de-identifying.

This module owns the last line of defence: :func:`scan_residual_identifiers`
looks in de-identified data for every identifier pattern in every text
column and, given the raw identifiers, for each row's own identifier values
in its free text (word by word, outside scrub tags) and in its other text
cells (whole); it reports :class:`Finding` objects that name the column and
the kind, never the value. :func:`check_residual_identifiers` fails closed
on any finding, and the pipeline uses the block-wise pieces
(:func:`_value_leaks`, :func:`_value_findings`, :func:`_pattern_findings`)
to scan while it de-identifies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hospfed.client.deid.blocks import (
    _halves,
    _in_parallel,
    _row_blocks,
    _text_chunks,
    _text_rows,
)
from hospfed.client.deid.names import _find_own_values, _row_needles, _word_spans
from hospfed.client.deid.needles import (
    _MIN_OWN_VALUE,
    _is_needle_source,
    _own_values,
    _OwnValues,
)
from hospfed.client.deid.patterns import (
    _COMBINED,
    _KIND_TAGS,
    IDENTIFIER_PATTERNS,
)
from hospfed.client.deid.textbuf import Ints, _buffers
from hospfed.common.errors import ConfigError, IdentifierLeakError
from hospfed.common.schema import Column, DatasetSchema, is_text


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
    identifier values (as :func:`.deidentify` scrubs them), and every other
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


_MAX_CHUNKS = 16
"""Columns in more chunks are joined before a regular expression runs over them."""


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
