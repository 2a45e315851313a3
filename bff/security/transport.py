"""Transport security: HSTS on HTTPS responses, plain HTTP redirected, TLS 1.3 when uvicorn serves TLS.

A request counts as HTTPS when ``scope["scheme"]`` says so. Uvicorn sets it when it serves TLS itself,
and its proxy-headers middleware sets it from ``X-Forwarded-Proto`` only when the connection comes
from an address in ``FORWARDED_ALLOW_IPS``; the same header from anyone else changes nothing, so a
client cannot talk its way into (or out of) HSTS or the redirect. 国密 TLCP (GB/T 38636) is not
spoken here: a Tongsuo-based proxy in front terminates it and forwards with ``X-Forwarded-Proto``.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    import uvicorn

    from bff.settings import Settings

# Load balancers probe these over plain HTTP; they carry nothing personal.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz"})
# A host name, IPv4 or bracketed IPv6 address, with an optional port: nothing else goes into Location.
_HOST = re.compile(rb"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::(\d{1,5}))?$")

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Any]


@dataclass(frozen=True, slots=True)
class TransportPolicy:
    hsts_max_age: int = 31_536_000
    hsts_include_subdomains: bool = True
    hsts_preload: bool = False
    redirect_http: bool = False

    @staticmethod
    def of(settings: Settings) -> TransportPolicy:
        return TransportPolicy(
            hsts_max_age=settings.hsts_max_age,
            hsts_include_subdomains=settings.hsts_include_subdomains,
            hsts_preload=settings.hsts_preload,
            redirect_http=settings.redirects_to_https,
        )

    @property
    def hsts(self) -> bytes:
        value = f"max-age={self.hsts_max_age}"
        if self.hsts_include_subdomains:
            value += "; includeSubDomains"
        if self.hsts_preload:
            value += "; preload"
        return value.encode("latin-1")


class TransportSecurity:
    """Plain ASGI middleware: adds Strict-Transport-Security to HTTPS responses; with ``redirect_http``,
    answers plain-HTTP requests with 308 to the same URL on https (the health probes excepted) and
    refuses plain-text WebSocket upgrades (browsers do not follow redirects there)."""

    def __init__(self, app: ASGIApp, *, policy: TransportPolicy) -> None:
        self.app = app
        self.policy = policy
        self._header = (b"strict-transport-security", policy.hsts)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            if scope.get("scheme") == "https":
                await self.app(scope, receive, self._with_hsts(send))
                return
            if self.policy.redirect_http and scope.get("path") not in EXEMPT_PATHS:
                await self._redirect(scope, send)
                return
        elif kind == "websocket" and scope.get("scheme") != "wss" and self.policy.redirect_http:
            # Closing before accepting makes the server answer the upgrade with 403.
            await send({"type": "websocket.close", "code": 1008, "reason": "use wss://"})
            return
        await self.app(scope, receive, send)

    def _with_hsts(self, send: Any) -> Any:
        header = self._header

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(name.lower() == header[0] for name, _ in headers):
                    headers.append(header)
                message = {**message, "headers": headers}
            await send(message)

        return sending

    @staticmethod
    async def _redirect(scope: Scope, send: Any) -> None:
        host = next((value for name, value in scope["headers"] if name == b"host"), b"")
        match = _HOST.match(host)
        if match is None:
            await _answer(send, 400, [], b"A Host header naming this server is required.")
            return
        if match.group(1) == b"80":  # the plain-HTTP port: https uses its own default
            host = host[: -len(b":80")]
        path = scope.get("raw_path") or quote(scope.get("path", "/")).encode("latin-1")
        query = scope.get("query_string", b"")
        location = b"https://" + host + path + (b"?" + query if query else b"")
        await _answer(send, 308, [(b"location", location)], b"")


async def _answer(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *headers,
                (b"content-length", str(len(body)).encode()),
                (b"content-type", b"text/plain; charset=utf-8"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def tls13_only(config: uvicorn.Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's ``ssl_context_factory``: its own context (certificate, key, ALPN), TLS 1.3 as the floor.

    uvicorn has no minimum-version option; the factory is a module-level function so uvicorn can
    hand it to worker processes."""
    context = default()
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


def tls_options(settings: Settings) -> dict[str, Any]:
    """uvicorn options for serving TLS itself (TLS_CERTFILE set), and for believing trusted proxies."""
    options: dict[str, Any] = {"proxy_headers": True, "forwarded_allow_ips": settings.forwarded_allow_ips}
    if settings.tls_certfile is not None:
        options.update(
            ssl_certfile=str(settings.tls_certfile),
            ssl_keyfile=str(settings.tls_keyfile) if settings.tls_keyfile else None,
            ssl_context_factory=tls13_only,
        )
    return options
