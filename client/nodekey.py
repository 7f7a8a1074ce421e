"""The hospital's node key: how the coordinator knows this hospital's process.

This module owns ``hospfed-client node-key``: an EC P-384 key pair in the
OpenSSH formats Flower's SuperNode authentication reads
(``load_ssh_private_key`` in ``flower-supernode``, ``load_ssh_public_key``
in ``flwr supernode register``): ``node.key`` (0600, stays at the hospital)
and ``node.pub`` (one line, sent to the coordinator, who admits it with
``hospfed-server admit NAME node.pub``). Made with ``cryptography``.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hospfed.common.errors import ConfigError
from hospfed.common.files import create_new

NODE_KEY, NODE_PUB = "node.key", "node.pub"


def make_node_key(directory: Path, comment: str = "") -> tuple[Path, Path]:
    """Create ``node.key`` (0600) and ``node.pub`` in ``directory``.

    Parameters
    ----------
    directory : Path
        Created 0700 if missing; neither file may exist yet.
    comment : str
        Appended to the public key line (the hospital's name, say).

    Returns
    -------
    tuple of Path
        The private and the public key files.

    Raises
    ------
    ConfigError
        If a key is there already (a node key is never replaced: the
        coordinator admitted its public half).

    """
    directory = directory.expanduser().absolute()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    private, public = directory / NODE_KEY, directory / NODE_PUB
    taken = [p.name for p in (private, public) if p.exists()]
    if taken:
        raise ConfigError(
            f"{directory} already holds {', '.join(taken)}: a node key is never "
            "replaced (the coordinator admitted it); choose another --out"
        )
    key = ec.generate_private_key(ec.SECP384R1())
    line = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    if comment.strip():
        line += b" " + "".join(c for c in comment if c.isprintable()).encode()
    create_new(
        private,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ),
        mode=0o600,
    )
    create_new(public, line + b"\n", mode=0o644)
    return private, public
