"""Vectorised text for synthetic data: string columns built with Arrow kernels.

The synthetic identities of :mod:`~hospfed.common.datasets.identities` are
made a whole column at a time, never row by row in Python: values drawn from
a pool (:func:`draw`), a template chosen per row with given weights
(:func:`pick`) and filled from columns of fields (:func:`render`, one Arrow
join per template), columns joined element-wise (:func:`join`), and integers
written as decimal text (:func:`as_text`), zero-padded if asked
(:func:`padded`). Every function takes its randomness from the NumPy
generator it is given, so the same generator state gives the same strings.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

Text: TypeAlias = Any  # a pyarrow StringArray; pyarrow ships no type stubs
Ints = npt.NDArray[np.int64]
Derived: TypeAlias = Mapping[str, Callable[[Callable[[str], Text]], Text]]
"""Template fields computed from others: each gets the fields through a getter."""


def draw(pool: Text, size: int, rng: np.random.Generator) -> Text:
    """``size`` values drawn uniformly, with replacement, from ``pool``."""
    return pool.take(rng.integers(0, len(pool), size))


def pick(weights: Sequence[int], size: int, rng: np.random.Generator) -> Ints:
    """Choose a template index per row with the given relative weights."""
    p = np.asarray(weights, dtype=float)
    return rng.choice(len(weights), size, p=p / p.sum())


def render(
    templates: Sequence[str],
    choice: Ints,
    fields: Mapping[str, Text],
    derived: Derived | None = None,
) -> Text:
    """Fill ``templates[choice[i]]`` with row ``i`` of ``fields``.

    Rows are grouped by template, each group is filled with one join, and
    one final take puts the rows back in order. A field named in
    ``derived`` is computed, only on the rows whose template names it.
    """
    order = np.argsort(choice, kind="stable")
    bounds = np.cumsum(np.bincount(choice, minlength=len(templates)))
    groups = np.split(order, bounds[:-1])
    filled = [
        _fill(template, fields, rows, derived or {})
        for template, rows in zip(templates, groups, strict=True)
    ]
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    return pa.concat_arrays(filled).take(position)


def _fill(
    template: str, fields: Mapping[str, Text], rows: Ints, derived: Derived
) -> Text:
    def field(name: str) -> Text:
        derive = derived.get(name)
        return fields[name].take(rows) if derive is None else derive(field)

    parts: list[Text | str] = []
    for literal, name, _, _ in string.Formatter().parse(template):
        if literal:
            parts.append(literal)
        if name is not None:
            parts.append(field(name))
    if all(isinstance(part, str) for part in parts):
        return pa.repeat(template, rows.size)
    return join(*parts)


def join(*parts: Text | str) -> Text:
    """Concatenate string columns (and literal strings) element-wise."""
    return pc.binary_join_element_wise(*parts, "")


def as_text(values: Ints) -> Text:
    """Integers as decimal strings."""
    return pc.cast(pa.array(values), pa.string())


def padded(values: Ints, width: int) -> Text:
    """Non-negative integers as decimal strings zero-padded to ``width``."""
    return pc.utf8_lpad(as_text(values), width=width, padding="0")
