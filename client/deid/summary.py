"""What one de-identification counted, and the report built from the counts.

This module owns :class:`_Tally` (the counts the pipeline gathers as it
goes: replacements in free text per tag, ages capped, ZIP codes set to
``000``, dates moved into the "90+" band, the reviewed columns) and
:func:`_report`, which turns them, the schema and the rows into a
:class:`~hospfed.client.deid.report.DeidReport`: per column what was done,
and per Safe Harbor category how many values were removed. Counts and
names only, never a value.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from hospfed.client.deid.profile import ColumnProfile
from hospfed.client.deid.report import DeidReport, KAnonymity
from hospfed.client.deid.settings import RestrictedZip3
from hospfed.client.deid.tags import TAG_CATEGORIES, TAGS
from hospfed.common.schema import PHI_CATEGORIES, Column, DatasetSchema


@dataclass
class _Tally:
    """Counts gathered while de-identifying (mutable, private)."""

    scrub_counts: Counter[str] = field(default_factory=Counter)
    ages_capped: int = 0
    zip3_restricted: int = 0
    dates_banded: int = 0
    reviewed: tuple[ColumnProfile, ...] = ()


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
        removed=_removed_by_category(frame, schema, tally),
        columns=tuple((c.name, _column_done(c, tally)) for c in schema.columns),
        reviewed=tuple((p.column, p.describe()) for p in tally.reviewed),
        dates_banded=tally.dates_banded,
    )


def _removed_by_category(
    frame: pd.DataFrame, schema: DatasetSchema, tally: _Tally
) -> tuple[tuple[str, int], ...]:
    """Values removed or generalised, per Safe Harbor category."""
    counts: Counter[str] = Counter()
    for column in schema.columns:
        category = _category_of(column)
        if category is None:
            continue
        if column.action == "age_cap":
            counts[category] += tally.ages_capped
        else:
            counts[category] += int(frame[column.name].notna().sum())
    counts["date"] += tally.dates_banded
    for tag, number in tally.scrub_counts.items():
        counts[TAG_CATEGORIES.get(tag, "other")] += number
    return tuple((c, counts[c]) for c in PHI_CATEGORIES if counts[c])


def _category_of(column: Column) -> str | None:
    """The category a column's values count under when its action removes them."""
    action = column.action
    if action in ("keep", "scrub") or (action == "drop" and column.role == "free_text"):
        return None
    if action in ("year", "shift"):
        return "date"
    if action == "zip3":
        return "zip"
    if action == "age_cap":
        return "age"
    if column.phi is not None:
        return column.phi
    return "other" if column.role == "identifier" else None


_DONE = {
    "drop": "dropped",
    "pseudonymise": "pseudonymised (keyed HMAC-SHA256)",
    "year": "date reduced to its year",
    "shift": "date shifted by the patient's secret offset",
    "zip3": "ZIP code cut to 3 digits (000 in restricted areas)",
    "age_cap": "ages over 89 set to 90",
    "scrub": "free text scrubbed (safe vocabulary only)",
    "keep": "kept",
}


def _column_done(column: Column, tally: _Tally) -> str:
    done = _DONE[column.action]
    if column.action == "drop" and column.role == "free_text":
        done = "dropped (free text is not a model input)"
    elif column.phi is not None and column.action == "drop":
        done = f"dropped ({column.phi})"
    elif column.action == "keep" and column.kind != "date":
        done = "kept (profiled: no identifier shape)"
        for profile in tally.reviewed:
            if profile.column == column.name:
                done = f"kept as reviewed: {profile.reviewed}"
    return done


def _most_common_first(counts: Counter[str]) -> tuple[tuple[str, int], ...]:
    """Counts by tag, most frequent first; ties in the order of :data:`.TAGS`."""
    order = {tag: rank for rank, tag in enumerate(TAGS)}
    ranked = sorted(counts.items(), key=lambda c: (-c[1], order.get(c[0], len(order))))
    return tuple(ranked)


def _with_action(schema: DatasetSchema, actions: Iterable[str]) -> tuple[str, ...]:
    return tuple(c.name for c in schema.columns if c.action in actions)
