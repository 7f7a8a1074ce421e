"""What de-identification reports: counts and column names, never values.

This module owns the two report types: :class:`KAnonymity` (how well the
quasi-identifiers hide each patient in a crowd, as measured by
:func:`~hospfed.client.deid.kanon.k_anonymity`) and :class:`DeidReport`
(what :func:`~hospfed.client.deid.pipeline.deidentify` did to each column,
with :meth:`DeidReport.to_lines` for the command line). Nothing here holds
or prints a patient value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


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
    removed : tuple of (str, int)
        Values removed or generalised per Safe Harbor category (``name``,
        ``date``, ``zip``, ...; ``other`` for codes and words of free text
        that are on no safe vocabulary), in the order of
        :data:`~hospfed.common.schema.PHI_CATEGORIES`.
    columns : tuple of (str, str)
        ``(column, what was done)`` for every column of the raw schema.
    reviewed : tuple of (str, str)
        ``(column, line)`` for kept columns that looked like identifiers and
        were kept because the schema says why (the line repeats its reason).
    dates_banded : int
        Kept dates moved into the "90+" band because they gave away an age
        over 89.

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
    removed: tuple[tuple[str, int], ...] = ()
    columns: tuple[tuple[str, str], ...] = ()
    reviewed: tuple[tuple[str, str], ...] = ()
    dates_banded: int = 0

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
            "removed per Safe Harbor category: "
            + (", ".join(f"{c} {n:,}" for c, n in self.removed) or "-"),
        ]
        lines += [f"reviewed, kept: {line}" for _, line in self.reviewed]
        return lines

    def column_lines(self) -> list[str]:
        """Return one line per column of the raw schema: what was done to it."""
        return [f"{column}: {done}" for column, done in self.columns]

    def _generalisation(self, column: str, action: str) -> str:
        if action == "zip3":
            return (
                f"{column} -> 3-digit ZIP ({self.zip3_restricted:,} set to 000, "
                f"list {self.zip3_list})"
            )
        if action == "age_cap":
            banded = (
                f", {self.dates_banded:,} dates moved into the 90+ band"
                if self.dates_banded
                else ""
            )
            return f"{column} -> 90+ ({self.ages_capped:,} capped{banded})"
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
