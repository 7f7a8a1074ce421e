"""The hospitals of ``hospfed-sim run``: the user's own files, or virtual ones.

A federation over a consortium's own data gets its hospitals one of four
ways, and each hospital then goes through the same data path a real one
does (a key, ``prepare`` under the federation's raw-export schema, training
only on the encrypted file), in the run's private workspace:

- ``--site NAME=FILE``: one raw export per hospital (CSV or Parquet),
  prepared on the fly; or an already prepared ``.hfd`` with its key
  (``--key NAME=KEYFILE``), used as it is;
- ``--data FILE --split-by COLUMN``: one table with a site column, the way
  multi-centre data often arrives; one hospital per value of the column
  (which must be in the schema: it is the schema that drops it);
- ``--data FILE --hospitals N --partition iid|dirichlet|linear``: one table
  split into N virtual hospitals (:mod:`~hospfed.simulations.partition`);
- ``--synthetic ROWS --hospitals N``: rows drawn for the task
  (:mod:`~hospfed.simulations.synthetic`), then partitioned.

Raw rows written for a virtual hospital live in its private workspace
directory only while it is prepared.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hospfed.client.prepare import DEFAULT_MIN_ROWS, prepare_export
from hospfed.client.vault import generate_key_file, load_key
from hospfed.common.errors import ConfigError, DataError
from hospfed.common.schema import DatasetSchema
from hospfed.common.task import LearningTask
from hospfed.simulations.heart import PreparedSite
from hospfed.simulations.partition import (
    dirichlet_partition,
    iid_partition,
    linear_partition,
)
from hospfed.simulations.workspace import Workspace

__all__ = [
    "SiteFile",
    "parse_sites",
    "partition_rows",
    "prepare_own_sites",
    "split_by_column",
]

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_PREPARED_SUFFIX = ".hfd"


@dataclass(frozen=True)
class SiteFile:
    """A hospital given on the command line: a raw export or a prepared file."""

    hospital: str
    path: Path
    key_file: Path | None = None

    @property
    def prepared(self) -> bool:
        """Whether the file is an encrypted dataset from ``prepare``."""
        return self.path.suffix.lower() == _PREPARED_SUFFIX


def check_hospital_name(name: str, where: str) -> str:
    """Refuse a hospital name that is not a short lowercase slug."""
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"{where}: hospital name {name!r} must be 1-64 characters of a-z, "
            "0-9, '-' and '_', starting with a letter or digit"
        )
    return name


def _pairs(values: Sequence[str], flag: str) -> dict[str, Path]:
    pairs: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not path:
            raise ConfigError(f"{flag} {value!r}: expected NAME=FILE")
        check_hospital_name(name, flag)
        if name in pairs:
            raise ConfigError(f"{flag}: hospital {name!r} is given twice")
        pairs[name] = Path(path).expanduser()
    return pairs


def parse_sites(sites: Sequence[str], keys: Sequence[str] = ()) -> list[SiteFile]:
    """Read ``--site NAME=FILE`` and ``--key NAME=KEYFILE`` flags.

    Raises
    ------
    ConfigError
        For a malformed pair, a name given twice, a missing file, a prepared
        file without its key, or a key for a hospital that has no prepared
        file.

    """
    files, key_files = _pairs(sites, "--site"), _pairs(keys, "--key")
    result = []
    for name, path in files.items():
        if not path.is_file():
            raise ConfigError(f"--site {name}={path}: no such file")
        site = SiteFile(name, path, key_files.pop(name, None))
        if site.prepared and site.key_file is None:
            raise ConfigError(
                f"--site {name}={path} is a prepared dataset: give its key with "
                f"--key {name}=KEYFILE"
            )
        if not site.prepared and site.key_file is not None:
            raise ConfigError(
                f"--key {name}: {path} is a raw export, prepared here with a "
                "fresh key; drop --key, or give the prepared .hfd file"
            )
        result.append(site)
    if key_files:
        raise ConfigError(f"--key {next(iter(key_files))}: no --site of that name")
    return result


def split_by_column(frame: pd.DataFrame, column: str) -> dict[str, pd.DataFrame]:
    """One hospital per value of ``column`` (kept: the schema decides its fate).

    Raises
    ------
    DataError
        If the column is missing or empty in a row, or a value is not a
        usable hospital name.

    """
    if column not in frame.columns:
        raise DataError(f"--split-by {column!r}: the table has no such column")
    values = frame[column]
    if values.isna().any():
        raise DataError(
            f"--split-by {column!r}: {int(values.isna().sum())} rows have no site"
        )
    slugs = values.astype(str).map(_slug)
    if slugs.groupby(slugs).ngroups != values.nunique():
        raise DataError(
            f"--split-by {column!r}: two site values give the same hospital name "
            "(names keep only a-z, 0-9, '-' and '_'); make the values distinct"
        )
    parts = {}
    for name, rows in frame.groupby(slugs.to_numpy()):
        check_hospital_name(str(name), f"--split-by {column!r}")
        parts[str(name)] = rows.reset_index(drop=True)
    return parts


def _slug(value: str) -> str:
    """A site value as a hospital name: ``"St. Mary's"`` -> ``st-mary-s``."""
    folded = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9_-]+", "-", folded.strip().lower()).strip("-")[:64]


def partition_rows(
    frame: pd.DataFrame,
    hospitals: int,
    *,
    partition: str,
    seed: int,
    label: str,
    alpha: float = 0.5,
) -> dict[str, pd.DataFrame]:
    """Split a table into ``hospitals`` virtual hospitals (``site-000``, ...).

    ``dirichlet`` skews the label (a continuous label is cut into quartiles
    first); ``iid`` and ``linear`` ignore it.

    Raises
    ------
    ConfigError
        For an unknown partitioner.
    DataError
        If the rows cannot make that many partitions.

    """
    if partition == "iid":
        parts = iid_partition(len(frame), hospitals, seed=seed)
    elif partition == "linear":
        parts = linear_partition(len(frame), hospitals, seed=seed)
    elif partition == "dirichlet":
        labels = frame[label]
        if labels.isna().any():
            raise DataError(
                f"--partition dirichlet: {int(labels.isna().sum())} rows have no "
                f"{label!r}; the label skew needs every row's label"
            )
        if pd.api.types.is_float_dtype(labels) and labels.nunique() > 20:
            labels = pd.qcut(labels, 4, labels=False, duplicates="drop")
        parts = dirichlet_partition(
            labels.to_numpy(),
            hospitals,
            alpha=alpha,
            seed=seed,
            min_partition_size=DEFAULT_MIN_ROWS,  # prepare's own minimum
        )
    else:
        raise ConfigError(
            f"unknown partition {partition!r}; allowed: iid, dirichlet, linear"
        )
    width = max(3, len(str(hospitals - 1)))
    return {
        f"site-{i:0{width}d}": frame.iloc[rows].reset_index(drop=True)
        for i, rows in enumerate(parts)
    }


def prepare_own_sites(
    workspace: Workspace,
    *,
    schema: DatasetSchema,
    task: LearningTask,
    files: Sequence[SiteFile] = (),
    frames: Mapping[str, pd.DataFrame] | None = None,
    k: int | None = None,
) -> list[PreparedSite]:
    """Run every hospital's data path; return their encrypted datasets.

    Parameters
    ----------
    workspace : Workspace
        The run's private workspace (keys, data, temporary raw rows).
    schema : DatasetSchema
        The federation's raw-export schema (what ``prepare`` checks).
    task : LearningTask
        The federation's task (checked against the schema by the caller).
    files : sequence of SiteFile
        Hospitals given as files.
    frames : Mapping, optional
        Virtual hospitals' raw rows, by name.
    k : int, optional
        ``prepare``'s k-anonymity level (None: its default check).

    Returns
    -------
    list of PreparedSite
        One per hospital, files first, then virtual hospitals in name order.

    Raises
    ------
    DataError, ConfigError
        From ``prepare``, with the hospital's name in front.

    """
    del task  # the task is checked by each hospital against its own data
    sites = []
    for site in files:
        if site.prepared:
            assert site.key_file is not None
            load_key(site.key_file)  # refuse a bad key before Ray starts
            sites.append(PreparedSite(site.hospital, site.path, site.key_file))
        else:
            sites.append(_prepare(workspace, site.hospital, site.path, schema, k))
    for name, rows in sorted((frames or {}).items()):
        raw = workspace.data_file(name).parent / "raw-export.parquet"
        rows.to_parquet(raw, index=False)
        try:
            sites.append(_prepare(workspace, name, raw, schema, k))
        finally:
            raw.unlink(missing_ok=True)
    return sites


def _prepare(
    workspace: Workspace, hospital: str, raw: Path, schema: DatasetSchema, k: int | None
) -> PreparedSite:
    data, key_file = workspace.data_file(hospital), workspace.key_file(hospital)
    key = generate_key_file(key_file)
    try:
        prepare_export(raw, data, schema=schema, key=key, k=k)
    except (DataError, ConfigError) as exc:
        raise type(exc)(f"hospital {hospital}: {exc}") from None
    return PreparedSite(hospital, data, key_file)
