"""Shared fixtures: the repository root and the read-only ../shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_UCI = REPO.parent / "shared" / "data" / "uci-heart-disease"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def uci_dir() -> Path:
    """The original UCI centre files (skips with a reason when absent)."""
    if not (SHARED_UCI / "SHA256SUMS").is_file():
        pytest.skip(f"original UCI files not found at {SHARED_UCI} (no ../shared)")
    return SHARED_UCI
