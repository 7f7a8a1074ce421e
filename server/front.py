"""The daemon's public face: TLS, and the Fleet API only.

Flower 1.42's SuperLink serves its Fleet, Control and runtime APIs on one
HTTP port, and the open-source Control API has no authentication: whoever
reaches it can register a node key of their own or start runs. The daemon
therefore binds the SuperLink to loopback and puts this front on the
public address. The front terminates TLS with the coordinator's server
certificate and forwards exactly the requests a SuperNode makes
(:data:`FLEET_PATHS`, ``POST`` only, taken from Flower's
``supernode/fleet_http_client.py`` and pinned by a contract test) to the
SuperLink over TLS on loopback, headers and body unchanged (the node's
signature headers are what the SuperLink's node authentication checks).
Anything else gets ``404`` from the front and never reaches the SuperLink.

Starlette, httpx and uvicorn are Flower's own dependencies; a generic
reverse proxy (nginx, envoy) would do the same job but is one more service
for a hospital consortium to run and configure.
"""

from __future__ import annotations

import base64
import binascii
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hospfed.server.certs import key_fingerprint

LOG = logging.getLogger("hospfed.server.front")

FLEET_PATHS = frozenset(
    f"/v1/fleet/{name}"
    for name in (
        "register-node",
        "activate-node",
        "deactivate-node",
        "unregister-node",
        "send-node-heartbeat",
        "pull-messages",
        "push-messages",
        "get-run",
        "get-fab",
        "push-object",
        "pull-object",
        "confirm-message-received",
    )
)
"""Every path Flower's SuperNode calls on the Fleet API."""

_HOP_BY_HOP = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    )
)
_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
"""Pulls and pushes of model arrays can take a while on a slow link."""


@dataclass(frozen=True)
class Upstream:
    """Where the SuperLink listens (loopback) and the CA its certificate chains to.

    Attributes
    ----------
    port : int
        The SuperLink's port on 127.0.0.1.
    ca : Path or None
        The coordinator's CA certificate; None for an ``--insecure`` daemon
        (plain HTTP on loopback).

    """

    port: int
    ca: Path | None

    @property
    def url(self) -> str:
        """The SuperLink's base URL."""
        scheme = "http" if self.ca is None else "https"
        return f"{scheme}://127.0.0.1:{self.port}"


def make_front(upstream: Upstream) -> Starlette:
    """The front's ASGI app: Fleet requests forwarded, everything else refused.

    Parameters
    ----------
    upstream : Upstream
        The SuperLink on loopback.

    Returns
    -------
    starlette.applications.Starlette
        The app to serve with TLS on the public address.

    """
    state: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        verify: ssl.SSLContext | bool = False
        if upstream.ca is not None:
            verify = ssl.create_default_context(cafile=str(upstream.ca))
        async with httpx.AsyncClient(
            base_url=upstream.url, verify=verify, timeout=_TIMEOUT
        ) as client:
            state["client"] = client
            yield

    async def forward(request: Request) -> Response:
        path = request.url.path
        if request.method != "POST" or path not in FLEET_PATHS:
            _refused(request, 404, "not a Fleet API call")
            return JSONResponse(
                {"detail": "not served on this port (Fleet API only)"}, status_code=404
            )
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP
        }
        try:
            reply = await state["client"].post(
                path, content=await request.body(), headers=headers
            )
        except httpx.TransportError:
            return JSONResponse(
                {"detail": "the coordinator's SuperLink is not reachable"},
                status_code=503,
            )
        if reply.status_code >= 400:
            _refused(request, reply.status_code, "the SuperLink said no")
        passed = {
            k: v for k, v in reply.headers.items() if k.lower() not in _HOP_BY_HOP
        }
        passed.pop("content-encoding", None)  # httpx has decoded the body
        return Response(reply.content, status_code=reply.status_code, headers=passed)

    return Starlette(
        routes=[
            Route("/{path:path}", forward, methods=["GET", "POST", "PUT", "DELETE"])
        ],
        lifespan=lifespan,
    )


def _refused(request: Request, status: int, why: str) -> None:
    """Log a refused request: who (address, node key fingerprint), what, why."""
    peer = request.client.host if request.client else "?"
    LOG.warning(
        "refused %s %s from %s (node key %s): %s, HTTP %d",
        request.method,
        request.url.path[:80],
        peer,
        _node_key(request.headers.get("flwr-public-key", "")),
        why,
        status,
    )


def _node_key(header: str) -> str:
    """The fingerprint of the node key a request carries (Flower: base64 PEM)."""
    if not header:
        return "none"
    try:
        key = serialization.load_pem_public_key(base64.b64decode(header, validate=True))
    except (ValueError, TypeError, binascii.Error):
        return "unreadable"
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return "not EC"
    return key_fingerprint(key)
