"""k-anonymity over the quasi-identifiers: measuring it and suppressing rows.

This module owns :func:`k_anonymity`, which groups rows by their
combination of quasi-identifier values (a missing value is a value too) and
reports the smallest group, and :func:`_k_anonymise`, which the pipeline
uses to suppress the rows in groups smaller than ``k`` and to report the
result after suppression.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from hospfed.client.deid.report import KAnonymity
from hospfed.client.deid.textbuf import Ints


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
    if not quasi_identifiers:  # nothing to single a patient out by
        return frame, replace(before, rows_below_k=0), everything
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
