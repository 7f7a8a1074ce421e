"""Virtual hospitals: partitioners (Flower Datasets' semantics) and sites."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hospfed.common.errors import ConfigError, DataError
from hospfed.simulations.partition import (
    dirichlet_partition,
    iid_partition,
    linear_partition,
)
from hospfed.simulations.sites import parse_sites, partition_rows, split_by_column


def _is_partition(parts, n):
    joined = np.concatenate(parts)
    return len(joined) == n and len(np.unique(joined)) == n


def test_iid_sizes_differ_by_at_most_one_and_are_seeded():
    parts = iid_partition(1003, 10, seed=1)
    assert _is_partition(parts, 1003)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    again = iid_partition(1003, 10, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    other = iid_partition(1003, 10, seed=2)
    assert not np.array_equal(parts[0], other[0])


def test_linear_sizes_grow_with_the_partition_id():
    parts = linear_partition(5500, 10, seed=0)
    assert _is_partition(parts, 5500)
    sizes = np.array([len(p) for p in parts])
    expected = 5500 * np.arange(1, 11) / 55
    assert np.all(np.abs(sizes - expected) <= 10)
    with pytest.raises(DataError, match="too few"):
        linear_partition(30, 10, seed=0)


def test_dirichlet_skews_labels_more_as_alpha_falls():
    labels = np.repeat([0, 1, 2], 2000)

    def skew(alpha):
        parts = dirichlet_partition(labels, 5, alpha=alpha, seed=3)
        assert _is_partition(parts, len(labels))
        # mean over partitions of the share of their most frequent class
        return np.mean(
            [np.bincount(labels[p], minlength=3).max() / len(p) for p in parts]
        )

    low, high = skew(0.1), skew(1000.0)
    assert low > 0.75  # a few dominant classes per hospital
    assert high < 0.40  # close to the global 1/3 each
    parts = dirichlet_partition(labels, 5, alpha=0.1, seed=3, min_partition_size=25)
    assert min(len(p) for p in parts) >= 25


def test_dirichlet_refuses_what_it_cannot_meet():
    with pytest.raises(ConfigError, match="alpha"):
        dirichlet_partition([0, 1] * 50, 2, alpha=0.0, seed=0)
    with pytest.raises(DataError, match="cannot make"):
        dirichlet_partition([0, 1] * 5, 2, alpha=1.0, seed=0, min_partition_size=10)
    with pytest.raises(DataError, match="no Dirichlet"):
        dirichlet_partition(
            np.repeat([0, 1], 100), 10, alpha=0.001, seed=0, min_partition_size=19
        )


def test_partition_rows_names_virtual_hospitals_and_bins_a_continuous_label():
    frame = pd.DataFrame({"x": np.arange(400.0), "y": np.linspace(0, 1, 400)})
    parts = partition_rows(frame, 4, partition="dirichlet", seed=0, label="y", alpha=5)
    assert sorted(parts) == ["site-000", "site-001", "site-002", "site-003"]
    assert sum(len(p) for p in parts.values()) == 400
    with pytest.raises(ConfigError, match="unknown partition"):
        partition_rows(frame, 4, partition="zipf", seed=0, label="y")
    frame.loc[3, "y"] = np.nan
    with pytest.raises(DataError, match="1 rows have no 'y'"):
        partition_rows(frame, 4, partition="dirichlet", seed=0, label="y")


def test_split_by_column_makes_names_and_refuses_collisions():
    frame = pd.DataFrame(
        {
            "site": ["St. Mary's", "Zürich Uni", "St. Mary's", "Zürich Uni"],
            "x": range(4),
        }
    )
    parts = split_by_column(frame, "site")
    assert sorted(parts) == ["st-mary-s", "zurich-uni"]
    assert len(parts["st-mary-s"]) == 2
    clash = pd.DataFrame({"site": ["A b", "a-b"], "x": [1, 2]})
    with pytest.raises(DataError, match="same hospital name"):
        split_by_column(clash, "site")
    with pytest.raises(DataError, match="no site"):
        split_by_column(pd.DataFrame({"site": ["a", None], "x": [1, 2]}), "site")
    with pytest.raises(DataError, match="no such column"):
        split_by_column(frame, "centre")


def test_parse_sites_refuses_malformed_and_unmatched_flags(tmp_path):
    raw = tmp_path / "a.csv"
    raw.write_text("x\n1\n")
    hfd = tmp_path / "b.hfd"
    hfd.write_bytes(b"x")
    sites = parse_sites([f"a={raw}", f"b={hfd}"], [f"b={tmp_path / 'b.key'}"])
    assert [(s.hospital, s.prepared) for s in sites] == [("a", False), ("b", True)]
    cases = [
        ([f"{raw}"], [], "NAME=FILE"),
        ([f"a={raw}", f"a={raw}"], [], "twice"),
        ([f"A/b={raw}"], [], "hospital name"),
        ([f"a={tmp_path / 'none.csv'}"], [], "no such file"),
        ([f"b={hfd}"], [], "--key b=KEYFILE"),
        ([f"a={raw}"], [f"a={raw}"], "raw export"),
        ([f"a={raw}"], [f"c={raw}"], "no --site of that name"),
    ]
    for site_flags, key_flags, message in cases:
        with pytest.raises(ConfigError, match=message):
            parse_sites(site_flags, key_flags)
