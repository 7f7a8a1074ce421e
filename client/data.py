"""What a hospital trains on: its prepared, encrypted dataset, named by its node config.

The training client accepts only datasets written by ``hospfed-client
prepare``: an encrypted file (``data``) and the key that opens it (a key
file, ``key-file``, or a passphrase in an environment variable,
``passphrase-env``). The file is decrypted in memory only; the schema it was
prepared under travels inside it and is checked against the run's schema
before any training. The rows become model inputs only when a round says
which learning task the run trains (:meth:`HospitalDataset.inputs`, built
by :func:`~hospfed.client.features.build_inputs` and kept per task).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hospfed.client.backends import BACKENDS
from hospfed.client.privacy import PrivacySettings
from hospfed.client.vault import (
    KeySource,
    check_one_key,
    open_key_source,
    read_encrypted_frame,
)
from hospfed.common.config import get_choice
from hospfed.common.errors import ConfigError, DataError, SchemaError
from hospfed.common.scaling import InputSums, Scaling
from hospfed.common.schema import DatasetSchema, loads_schema
from hospfed.common.task import LearningTask, check_task_reads
from hospfed.common.training import HospitalData


class Meta:
    """Metadata keys stored (encrypted) inside a prepared dataset."""

    SCHEMA = "schema"
    FINGERPRINT = "schema-fingerprint"
    PREPARED_AT = "prepared-at"
    REPORT = "deid-report"
    SOURCE = "source"


_KEY_NAMES = ("'key-file'", "'passphrase-env'")  # node config keys


@dataclass(frozen=True, kw_only=True)
class NodeSettings:
    """A hospital's own settings (its Flower node config).

    Attributes
    ----------
    hospital : str
        The hospital's name, as reported to the coordinator.
    data : Path
        Its prepared dataset (``.hfd``, from ``hospfed-client prepare``).
    key_file : Path or None
        The key file that opens ``data``.
    passphrase_env : str or None
        Or: the environment variable holding the passphrase.
    backend : str
        Training backend, one of :data:`~hospfed.client.backends.base.BACKENDS`.
    privacy : PrivacySettings or None
        The hospital's own DP-SGD budget and settings; None trains
        without differential privacy.
    state_dir : Path or None
        Where the hospital keeps its privacy ledger (required with DP).
    input_sums : bool
        Whether the hospital answers a coordinator's query for sums over its
        training inputs (federation-wide standardisation; node config
        ``input-sums = "allow"``). Off by default: the sums are exact
        statistics of its patients, sent in the clear.

    """

    hospital: str
    data: Path
    key_file: Path | None = None
    passphrase_env: str | None = None
    backend: str = "keras"
    privacy: PrivacySettings | None = None
    state_dir: Path | None = None
    input_sums: bool = False

    def __post_init__(self) -> None:
        check_one_key(self.key_file, self.passphrase_env, names=_KEY_NAMES)
        if self.privacy is not None and self.state_dir is None:
            raise ConfigError(
                "node config sets 'epsilon' but no 'state-dir': DP needs a "
                "directory for the hospital's privacy ledger"
            )

    def key(self) -> KeySource:
        """Load the key file, or read the passphrase from the environment."""
        return open_key_source(self.key_file, self.passphrase_env, names=_KEY_NAMES)

    @classmethod
    def from_mapping(cls, node_config: Mapping[str, Any]) -> NodeSettings:
        """Read settings from a node config; raise ConfigError if incomplete."""
        data = _text(node_config, "data")
        if not data:
            raise ConfigError(
                "node config has no 'data': start the client with --node-config "
                '\'data="site.hfd" key-file="site.key"\' (a dataset written by '
                "hospfed-client prepare)"
            )
        path = Path(data).expanduser()
        key_file, state_dir = (
            _text(node_config, "key-file"),
            _text(node_config, "state-dir"),
        )
        return cls(
            hospital=_text(node_config, "hospital").lower() or path.stem,
            data=path,
            key_file=Path(key_file).expanduser() if key_file else None,
            passphrase_env=_text(node_config, "passphrase-env") or None,
            backend=get_choice(node_config, "backend", "keras", BACKENDS),
            privacy=PrivacySettings.from_mapping(node_config),
            state_dir=Path(state_dir).expanduser() if state_dir else None,
            input_sums=_input_sums(node_config),
        )


INPUT_SUMS_KEY = "input-sums"
"""Node config key: ``"allow"`` lets the hospital answer sums queries."""


def _input_sums(config: Mapping[str, Any]) -> bool:
    value = _text(config, INPUT_SUMS_KEY).lower()
    if value not in ("", "allow", "deny"):
        raise ConfigError(
            f"node config {INPUT_SUMS_KEY!r} is {value!r}; allowed: allow, deny"
        )
    return value == "allow"


def _text(config: Mapping[str, Any], key: str) -> str:
    return str(config.get(key, "")).strip()


@dataclass(frozen=True)
class PreparedDataset:
    """A decrypted prepared dataset, in memory.

    Attributes
    ----------
    frame : pandas.DataFrame
        The de-identified rows.
    schema : DatasetSchema
        The schema it was prepared under (it matches ``frame``).
    prepared_at : str
        When ``prepare`` wrote it (UTC, ISO 8601).

    """

    frame: pd.DataFrame
    schema: DatasetSchema
    prepared_at: str


def check_dataset_file(path: Path) -> None:
    """Refuse, before decrypting, what cannot be a prepared dataset.

    A directory and an empty file get their own message (a missing file is
    reported by the reader).

    Raises
    ------
    DataError
        If ``path`` is a directory or an empty file.

    """
    if path.is_dir():
        raise DataError(
            f"{path} is a directory, not a prepared dataset; give the .hfd file "
            "written by hospfed-client prepare"
        )
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(
            f"{path} is an empty file (0 bytes), not a prepared dataset; run "
            "hospfed-client prepare again"
        )


def open_prepared(path: Path, key: KeySource) -> PreparedDataset:
    """Decrypt a prepared dataset in memory and check it against its schema.

    Raises
    ------
    DecryptionError
        If the key is wrong or the file was altered.
    DataError
        If the file is empty or a directory, was not written by ``prepare``,
        its schema and rows disagree, or it holds no rows.

    """
    check_dataset_file(path)
    frame, metadata = read_encrypted_frame(path, key)
    if Meta.SCHEMA not in metadata or Meta.FINGERPRINT not in metadata:
        raise DataError(
            f"{path} is encrypted but is not a prepared dataset (no schema inside); "
            "write it with hospfed-client prepare"
        )
    try:
        schema = loads_schema(metadata[Meta.SCHEMA])
    except (ConfigError, SchemaError) as error:
        raise DataError(f"{path}: the schema inside cannot be read: {error}") from None
    if schema.fingerprint() != metadata[Meta.FINGERPRINT]:
        raise DataError(f"{path}: the schema inside does not match its fingerprint")
    try:
        schema.validate(frame)
    except SchemaError as error:
        raise SchemaError(
            f"{path}: its rows do not match the schema inside ({error}); run "
            "hospfed-client prepare again"
        ) from None
    if frame.empty:
        raise DataError(
            f"{path} holds no rows: there is nothing to train on; run "
            "hospfed-client prepare again on the full export"
        )
    return PreparedDataset(frame, schema, metadata.get(Meta.PREPARED_AT, "unknown"))


@dataclass
class HospitalDataset:
    """What the training client holds: the prepared rows and their schema.

    Attributes
    ----------
    frame : pandas.DataFrame
        The hospital's de-identified rows (decrypted, in memory only).
    schema : DatasetSchema
        The schema they were prepared under.
    hospital : str
        The hospital's name (for messages).

    """

    frame: pd.DataFrame
    schema: DatasetSchema
    hospital: str
    _inputs: dict[str, HospitalData] = field(default_factory=dict, repr=False)
    _fingerprint: str | None = field(default=None, repr=False)
    sums_sent: set[str] = field(default_factory=set, repr=False)
    """Runs this process has answered a sums query for (one answer per run)."""

    def inputs(
        self, task: LearningTask, scaling: Scaling | None = None
    ) -> HospitalData:
        """The model inputs ``task`` builds from these rows (kept per task).

        ``scaling``: the federation's statistics, for a task that
        standardises by federation.

        Raises
        ------
        SchemaError, DataError
            If the task does not fit these rows, naming the column.
        ConfigError
            If the task needs ``scaling`` and it is missing.

        """
        from hospfed.client.features import build_inputs

        key = task.fingerprint() + ("" if scaling is None else scaling.digest())
        if key not in self._inputs:
            check_task_reads(task, self.schema)
            self._inputs[key] = build_inputs(self.frame, task, self.hospital, scaling)
        return self._inputs[key]

    def fingerprint(self) -> str:
        """SHA-256 of the prepared rows (names, types and every value).

        What the privacy ledger is bound to: every task trained on these
        rows spends the same budget, whatever inputs it builds from them.
        """
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for name, dtype in self.frame.dtypes.items():
                digest.update(f"{name}\x1f{dtype}\x1e".encode())
            rows = pd.util.hash_pandas_object(self.frame, index=False)
            digest.update(np.ascontiguousarray(rows.to_numpy()).tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def input_sums(self, task: LearningTask) -> InputSums:
        """Sums over the training inputs ``task`` builds (federation scaling)."""
        from hospfed.client.features import input_sums

        check_task_reads(task, self.schema)
        return input_sums(self.frame, task, self.hospital)


def load_hospital_data(settings: NodeSettings) -> HospitalDataset:
    """Load the prepared dataset named by ``settings`` (cached per process).

    For a process that lives as long as Flower's per-message ClientApp or a
    simulation; the long-lived hospital process uses
    :func:`read_hospital_data`, which keeps no copy (its warm worker drops
    the decrypted data when idle).
    """
    return _load(settings)


def read_hospital_data(settings: NodeSettings) -> HospitalDataset:
    """Load the prepared dataset named by ``settings``, keeping no copy."""
    return _load.__wrapped__(settings)


@functools.cache
def _load(settings: NodeSettings) -> HospitalDataset:
    prepared = open_prepared(settings.data, settings.key())
    return HospitalDataset(prepared.frame, prepared.schema, settings.hospital)
