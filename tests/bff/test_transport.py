"""Transport: TLS 1.3 only when uvicorn serves TLS, HSTS on HTTPS responses (direct or through a
trusted proxy), plain HTTP redirected in production. Real servers on 127.0.0.1, real sockets."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from bff.app import create_app
from bff.security.transport import TransportPolicy, TransportSecurity
from bff.settings import Settings
from datasources.clock import FixedClock
from tests.conftest import DatabaseTarget, LiveServer, make_settings

QUERY = {"query": "{ __typename }"}
HSTS = "strict-transport-security"


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bff.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "bff.crt", directory / "bff.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def _serve(settings: Settings, clock: FixedClock) -> LiveServer:
    return await LiveServer(create_app(settings, clock=clock), settings).start()


@pytest.fixture
async def tls_server(
    database: DatabaseTarget, tmp_path: Path, clock: FixedClock
) -> AsyncIterator[tuple[LiveServer, Path]]:
    """The app served with TLS by uvicorn, and the certificate a client must trust."""
    cert, key = _self_signed(tmp_path)
    live = await _serve(make_settings(database, tmp_path, tls_certfile=cert, tls_keyfile=key), clock)
    yield live, cert
    await live.stop()


def _port(server: LiveServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


async def test_a_tls_1_3_client_is_served_over_tls_1_3_and_told_to_stay_on_https(
    tls_server: tuple[LiveServer, Path],
) -> None:
    server, cert = tls_server
    trusting = ssl.create_default_context(cafile=cert)
    assert server.url.startswith("https://")
    async with httpx.AsyncClient(verify=trusting) as client:
        response = await client.post(f"{server.url}/graphql", json=QUERY)
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}
    assert response.headers[HSTS] == "max-age=31536000; includeSubDomains"
    _, writer = await asyncio.open_connection("127.0.0.1", _port(server), ssl=trusting)
    assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
    writer.close()
    await writer.wait_closed()


async def test_a_client_that_stops_at_tls_1_2_is_refused_in_the_handshake(
    tls_server: tuple[LiveServer, Path],
) -> None:
    server, cert = tls_server
    old = ssl.create_default_context(cafile=cert)
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    # The server ends the handshake: an alert (SSLError) or, as asyncio's server does, a reset.
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        await asyncio.open_connection("127.0.0.1", _port(server), ssl=old)


async def test_in_production_plain_http_is_redirected_to_https_without_hsts_and_probes_still_answer(
    database: DatabaseTarget, tmp_path: Path, clock: FixedClock
) -> None:
    server = await _serve(make_settings(database, tmp_path, environment="production"), clock)
    try:
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{server.url}/graphql?op=home", json=QUERY)
            health = await client.get(f"{server.url}/healthz")
            ready = await client.get(f"{server.url}/readyz")
        assert response.status_code == 308
        assert response.headers["location"] == f"https://127.0.0.1:{_port(server)}/graphql?op=home"
        assert HSTS not in response.headers
        assert (health.status_code, ready.status_code) == (200, 200)
        assert HSTS not in health.headers
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(server.url.replace("http", "ws", 1) + "/graphql"):
                pass
        assert refused.value.response.status_code == 403
    finally:
        await server.stop()


async def test_in_development_plain_http_is_served_without_hsts(
    database: DatabaseTarget, tmp_path: Path, clock: FixedClock
) -> None:
    server = await _serve(make_settings(database, tmp_path), clock)
    try:
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{server.url}/graphql", json=QUERY)
        assert response.status_code == 200
        assert HSTS not in response.headers
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("allowed", "believed"),
    [("127.0.0.1", True), ("192.0.2.10", False)],
    ids=["trusted-proxy", "untrusted-address"],
)
async def test_x_forwarded_proto_counts_only_from_a_trusted_proxy(
    database: DatabaseTarget, tmp_path: Path, clock: FixedClock, allowed: str, believed: bool
) -> None:
    settings = make_settings(
        database, tmp_path, environment="production", forwarded_allow_ips=allowed, request_signatures="optional"
    )
    server = await _serve(settings, clock)
    try:
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{server.url}/graphql", json=QUERY, headers={"x-forwarded-proto": "https"})
        if believed:
            assert response.status_code == 200
            assert response.headers[HSTS] == "max-age=31536000; includeSubDomains"
        else:
            assert response.status_code == 308
            assert HSTS not in response.headers
    finally:
        await server.stop()


async def _call(app: Any, scope: dict[str, Any]) -> tuple[int, dict[bytes, bytes]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"])


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _scope(scheme: str, host: bytes, path: str = "/graphql", query: bytes = b"") -> dict[str, Any]:
    return {
        "type": "http",
        "scheme": scheme,
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": [(b"host", host)],
    }


async def test_the_hsts_header_follows_the_settings() -> None:
    short = TransportSecurity(_ok, policy=TransportPolicy(hsts_max_age=600, hsts_include_subdomains=False))
    assert (await _call(short, _scope("https", b"bff.example")))[1][b"strict-transport-security"] == b"max-age=600"
    preload = TransportSecurity(_ok, policy=TransportPolicy(hsts_preload=True))
    headers = (await _call(preload, _scope("https", b"bff.example")))[1]
    assert headers[b"strict-transport-security"] == b"max-age=31536000; includeSubDomains; preload"
    with pytest.raises(ValidationError, match="HSTS_PRELOAD"):
        Settings(hsts_preload=True, hsts_include_subdomains=False)
    with pytest.raises(ValidationError, match="TLS_CERTFILE"):
        Settings(tls_keyfile=Path("bff.key"))


async def test_the_redirect_keeps_host_path_and_query_and_refuses_a_forged_host() -> None:
    redirecting = TransportSecurity(_ok, policy=TransportPolicy(redirect_http=True))
    status, headers = await _call(redirecting, _scope("http", b"bff.example:80", "/graphql", b"a=1&b=%E4%B8%AD"))
    assert (status, headers[b"location"]) == (308, b"https://bff.example/graphql?a=1&b=%E4%B8%AD")
    status, _ = await _call(redirecting, _scope("http", b"evil.example/\r\nset-cookie: x"))
    assert status == 400
    assert Settings(environment="production", callback_secret="s").redirects_to_https
    assert not Settings(environment="production", callback_secret="s", https_redirect=False).redirects_to_https
    assert not Settings().redirects_to_https
