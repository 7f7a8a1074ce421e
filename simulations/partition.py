"""Split one table into virtual hospitals, as Flower Datasets' partitioners do.

Flower Datasets (``flwr-datasets``) is the ecosystem's convention for
splitting a dataset into federated partitions, but its partitioners work on
Hugging Face ``datasets.Dataset`` objects and the package pulls in the
``datasets`` stack, which hospfed does not otherwise need. These functions
match the semantics of the three partitioners a researcher reaches for, on
row positions of a pandas frame:

- :func:`iid_partition`: ``IidPartitioner``, a seeded shuffle cut into
  ``n`` near-equal parts (sizes differ by at most one);
- :func:`dirichlet_partition`: ``DirichletPartitioner`` (label skew), for
  each class the share of every partition drawn from Dirichlet(alpha),
  redrawn until every partition holds at least ``min_partition_size`` rows
  (up to 100 draws here; Flower's partitioner tries 10);
  small alpha gives each hospital a few dominant classes;
- :func:`linear_partition`: ``LinearPartitioner`` (size skew), partition
  ``i`` holding a share proportional to ``i + 1``.

Every function returns sorted row positions per partition, and each row is
in exactly one partition.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from hospfed.common.errors import ConfigError, DataError

__all__ = [
    "PARTITIONERS",
    "dirichlet_partition",
    "iid_partition",
    "linear_partition",
]

Positions = npt.NDArray[np.int64]

PARTITIONERS: tuple[str, ...] = ("iid", "dirichlet", "linear")
DEFAULT_MIN_PARTITION_SIZE = 10  # Flower's DirichletPartitioner default
_MAX_DRAWS = 100  # DirichletPartitioner's default retries before giving up


def _check(num_rows: int, num_partitions: int, min_size: int) -> None:
    if num_partitions < 1:
        raise ConfigError(f"need at least 1 partition, got {num_partitions}")
    if num_rows < num_partitions * max(1, min_size):
        raise DataError(
            f"{num_rows} rows cannot make {num_partitions} partitions of at least "
            f"{max(1, min_size)} rows; use fewer hospitals or more rows"
        )


def iid_partition(num_rows: int, num_partitions: int, *, seed: int) -> list[Positions]:
    """Shuffle the rows (seeded) and cut them into near-equal parts.

    Parameters
    ----------
    num_rows : int
        Rows of the table.
    num_partitions : int
        Virtual hospitals.
    seed : int
        Seed of the shuffle.

    Returns
    -------
    list of numpy.ndarray
        Sorted row positions of each partition.

    Raises
    ------
    DataError
        If there are fewer rows than partitions.

    """
    _check(num_rows, num_partitions, 1)
    order = np.random.default_rng(seed).permutation(num_rows)
    return [np.sort(part) for part in np.array_split(order, num_partitions)]


def linear_partition(
    num_rows: int, num_partitions: int, *, seed: int
) -> list[Positions]:
    """Size skew: partition ``i`` gets a share proportional to ``i + 1``.

    Every partition gets at least one row; rounding remainders go to the
    largest partitions. The rows are shuffled (seeded) first.

    Raises
    ------
    DataError
        If the smallest share would hold no row.

    """
    _check(num_rows, num_partitions, 1)
    weights = np.arange(1, num_partitions + 1, dtype=np.float64)
    sizes = np.floor(weights / weights.sum() * num_rows).astype(np.int64)
    if sizes.min() < 1:
        raise DataError(
            f"{num_rows} rows are too few for a linear size skew over "
            f"{num_partitions} hospitals (the smallest would get no row)"
        )
    sizes[-1] += num_rows - int(sizes.sum())
    order = np.random.default_rng(seed).permutation(num_rows)
    bounds = np.cumsum(sizes)[:-1]
    return [np.sort(part) for part in np.split(order, bounds)]


def dirichlet_partition(
    labels: Sequence[object] | npt.NDArray[np.generic],
    num_partitions: int,
    *,
    alpha: float,
    seed: int,
    min_partition_size: int = DEFAULT_MIN_PARTITION_SIZE,
) -> list[Positions]:
    """Label skew: each class spread over partitions by Dirichlet(alpha) shares.

    Parameters
    ----------
    labels : array-like
        The label of every row (any hashable values, none missing; a
        continuous label should be binned first).
    num_partitions : int
        Virtual hospitals.
    alpha : float
        Concentration: small (0.1) gives each hospital few classes, large
        (100) approaches IID.
    seed : int
        Seed of the draws and the shuffles.
    min_partition_size : int
        Every partition must hold at least this many rows; the draw is
        repeated (up to 100 times; Flower's partitioner tries 10) until it
        does.

    Returns
    -------
    list of numpy.ndarray
        Sorted row positions of each partition.

    Raises
    ------
    ConfigError
        If alpha is not positive.
    DataError
        If no draw met ``min_partition_size`` (use a larger alpha, fewer
        hospitals or a smaller minimum).

    """
    if not alpha > 0:
        raise ConfigError(f"Dirichlet alpha must be > 0, got {alpha}")
    values = np.asarray(labels)
    _check(len(values), num_partitions, min_partition_size)
    rng = np.random.default_rng(seed)
    classes = [np.flatnonzero(values == c) for c in np.unique(values)]
    for _ in range(_MAX_DRAWS):
        parts: list[list[int]] = [[] for _ in range(num_partitions)]
        for members in classes:
            shuffled = rng.permutation(members)
            shares = rng.dirichlet(np.full(num_partitions, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(shuffled)).astype(np.int64)
            for part, chunk in zip(parts, np.split(shuffled, cuts), strict=True):
                part.extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_partition_size:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise DataError(
        f"no Dirichlet(alpha={alpha}) split over {num_partitions} hospitals gave "
        f"each at least {min_partition_size} rows in {_MAX_DRAWS} draws; raise "
        "alpha, or use fewer hospitals"
    )
