"""Where a hospital's training data comes from, read from its node config.

A hospital's node config names its data. Today one source exists: a
hospital of the embedded Fed-Heart-Disease federation (``hospital =
"cleveland"``, for demos and simulation). Encrypted prepared datasets
arrive as a second source behind the same :func:`load_hospital_data`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hospfed.common.backend import BACKENDS
from hospfed.common.config import get_choice
from hospfed.common.errors import ConfigError
from hospfed.common.heart import HOSPITALS, HospitalData, load_hospital
from hospfed.common.privacy import PrivacySettings


@dataclass(frozen=True)
class NodeSettings:
    """A hospital's own settings (its Flower node config).

    Attributes
    ----------
    hospital : str
        Which data this node trains on.
    backend : str
        Training backend, one of :data:`~hospfed.common.backend.BACKENDS`.
    privacy : PrivacySettings or None
        The hospital's own DP-SGD budget and settings; None trains
        without differential privacy.
    state_dir : Path or None
        Where the hospital keeps its privacy ledger (required with DP).

    """

    hospital: str
    backend: str
    privacy: PrivacySettings | None = None
    state_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.privacy is not None and self.state_dir is None:
            raise ConfigError(
                "node config sets 'epsilon' but no 'state-dir': DP needs a "
                "directory for the hospital's privacy ledger"
            )

    @classmethod
    def from_mapping(cls, node_config: Mapping[str, Any]) -> NodeSettings:
        """Read settings from a node config; raise ConfigError if incomplete."""
        hospital = str(node_config.get("hospital", "")).strip().lower()
        if not hospital:
            raise ConfigError(
                "node config has no 'hospital': start the client with "
                f"--node-config 'hospital=\"NAME\"' (one of {', '.join(HOSPITALS)})"
            )
        backend = get_choice(node_config, "backend", "keras", BACKENDS)
        state_dir = str(node_config.get("state-dir", "")).strip()
        return cls(
            hospital=hospital,
            backend=backend,
            privacy=PrivacySettings.from_mapping(node_config),
            state_dir=Path(state_dir).expanduser() if state_dir else None,
        )


def load_hospital_data(settings: NodeSettings) -> HospitalData:
    """Load the data named by ``settings`` (cached per process)."""
    return load_hospital(settings.hospital)
