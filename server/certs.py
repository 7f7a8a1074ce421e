"""The coordinator's TLS material: a private CA and the server certificate.

This module owns ``hospfed-server certs``: a CA (EC P-384, self-signed,
``ca.pem`` / ``ca.key``) and a server certificate it signs (``server.pem``
/ ``server.key``) for the names hospitals dial, always with
``IP:127.0.0.1`` and ``DNS:localhost`` among its subject alternative names:
Flower's SuperLink connects to itself there, and so does the daemon's
Fleet-only front (:mod:`hospfed.server.front`). Everything is made with
``cryptography``; keys are written 0600 and never replace a file.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hospfed.common.errors import ConfigError
from hospfed.common.files import check_owner_only, create_new

CA_CERT, CA_KEY = "ca.pem", "ca.key"
SERVER_CERT, SERVER_KEY = "server.pem", "server.key"
CA_DAYS = 3650
SERVER_DAYS = 825
"""Validity of the server certificate (the CA/Browser Forum's old ceiling)."""
LOOPBACK_NAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class CertPaths:
    """Where a certificate directory keeps each file.

    Attributes
    ----------
    ca, ca_key, server, server_key : Path
        The CA certificate (handed to hospitals), its key, the server
        certificate and its key.

    """

    ca: Path
    ca_key: Path
    server: Path
    server_key: Path

    @classmethod
    def of(cls, directory: Path) -> CertPaths:
        """The files of ``directory``."""
        directory = directory.expanduser().absolute()
        return cls(
            directory / CA_CERT,
            directory / CA_KEY,
            directory / SERVER_CERT,
            directory / SERVER_KEY,
        )

    def check(self) -> None:
        """Raise ConfigError if a file is missing, KeyFileError if a key is exposed."""
        for path in (self.ca, self.server, self.server_key):
            if not path.is_file():
                raise ConfigError(
                    f"{path} is missing: make the certificates with "
                    "`hospfed-server certs --out DIR --host NAME`"
                )
        check_owner_only(self.server_key)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _alt_names(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    seen: set[str] = set()
    for given in [*hosts, *LOOPBACK_NAMES]:
        host = given.strip().lower()
        if not host or host in seen:
            continue
        seen.add(host)
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if any(c in host for c in " /:@"):
                raise ConfigError(
                    f"--host {host!r} is neither a DNS name nor an IP address"
                ) from None
            names.append(x509.DNSName(host))
    return names


def make_certs(directory: Path, hosts: list[str], *, org: str = "hospfed") -> CertPaths:
    """Create the CA and the server certificate in ``directory``.

    Parameters
    ----------
    directory : Path
        Created 0700 if missing; none of the four files may exist yet.
    hosts : list of str
        Names and addresses hospitals use to reach the coordinator
        (``127.0.0.1`` and ``localhost`` are always added).
    org : str
        Organisation name in the subjects.

    Returns
    -------
    CertPaths
        The files written.

    Raises
    ------
    ConfigError
        If a file exists already (nothing is replaced) or a host is malformed.

    """
    paths = CertPaths.of(directory)
    alt = _alt_names(hosts)
    directory = paths.ca.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    taken = [p.name for p in vars(paths).values() if p.exists()]
    if taken:
        raise ConfigError(
            f"{directory} already holds {', '.join(taken)}: certificates are never "
            "replaced; choose another --out or move the old ones away"
        )
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{org} coordinator CA"),
        ]
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA384())
    )
    server_key = ec.generate_private_key(ec.SECP384R1())
    first = next((h for h in hosts if h.strip()), "localhost").strip()
    server = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                    x509.NameAttribute(NameOID.COMMON_NAME, first[:64]),
                ]
            )
        )
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA384())
    )
    pem = serialization.Encoding.PEM
    create_new(paths.ca_key, _pem_key(ca_key), mode=0o600)
    create_new(paths.server_key, _pem_key(server_key), mode=0o600)
    create_new(paths.server, server.public_bytes(pem), mode=0o644)
    create_new(paths.ca, ca.public_bytes(pem), mode=0o644)
    return paths


def describe(paths: CertPaths) -> dict[str, Any]:
    """The server certificate's names and validity (for ``certs`` and ``status``)."""
    cert = x509.load_pem_x509_certificate(paths.server.read_bytes())
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {
        "names": [str(v) for v in alt.get_values_for_type(x509.DNSName)]
        + [str(v) for v in alt.get_values_for_type(x509.IPAddress)],
        "valid_until": cert.not_valid_after_utc.date().isoformat(),
        "ca": str(paths.ca),
        "owner_only_keys": all(
            not (os.stat(p).st_mode & 0o077) for p in (paths.ca_key, paths.server_key)
        ),
    }


def key_fingerprint(key: ec.EllipticCurvePublicKey) -> str:
    """The SHA-256 fingerprint of a node's public key, as ``ssh-keygen -l`` shows it."""
    blob = key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).split()[1]
    digest = hashlib.sha256(base64.b64decode(blob)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")
