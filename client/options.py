"""Command-line options the hospital's commands share: which key opens the data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hospfed.client.vault import KeySource, open_key_source

__all__ = ["KEY_FLAGS", "KeyOption", "PassphraseOption", "StateDirOption", "key_source"]

KEY_FLAGS = ("--key FILE", "--passphrase-env VAR")
"""How the commands spell the two ways to give the hospital's key."""

KeyOption = Annotated[
    Path | None,
    typer.Option("--key", help="The hospital's key file (from keygen)."),
]
PassphraseOption = Annotated[
    str | None,
    typer.Option(
        help="Use a passphrase instead of a key file, read from this "
        "environment variable (e.g. HOSPFED_PASSPHRASE)."
    ),
]


def key_source(key: Path | None, passphrase_env: str | None) -> KeySource:
    """The key file or the passphrase; exactly one must be given."""
    return open_key_source(key, passphrase_env, names=KEY_FLAGS)


StateDirOption = Annotated[
    Path,
    typer.Option(help="The client's state directory (node config 'state-dir')."),
]
