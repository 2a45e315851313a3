"""Signed requests: only registered apps with a valid certificate get through, each refusal has its code."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import websockets

from bff.app import create_app
from clients import signing
from clients.reference import GraphQLClient, GraphQLError
from clients.signing import RequestSigner
from datasources.clock import FixedClock
from datasources.crypto import certificates, primitives
from resolvers import apps
from tests.conftest import REDIS_URL, DatabaseTarget, LiveServer, make_settings

CAMPUSES = "{ campuses { name } }"  # public, no login needed
BODY = json.dumps({"query": CAMPUSES}).encode()


@dataclass
class Signed:
    server: LiveServer
    security_clock: FixedClock

    async def app(self, app_id: str, algorithm: str = "SM2-SM3", *, sign_responses: bool = False) -> RequestSigner:
        """Registers an app and issues it a certificate, as the operator's console or CLI does."""
        deps = self.server.deps
        await apps.register_app(
            deps.db,
            deps.security_clock,
            app_id=app_id,
            name=app_id,
            kind="FRONT_END",
            algorithm=algorithm,
            sign_responses=sign_responses,
        )
        issued = await apps.issue_certificate(
            deps.db, deps.cipher.keyring, deps.security_clock, deps.certificates, app_id=app_id
        )
        await self.reload()
        assert issued.private_key_pem is not None
        return RequestSigner.from_pem(app_id, issued.certificate.serial, issued.private_key_pem)

    async def reload(self) -> None:
        await self.server.app.state.gateway_state.verifier.registry.refresh()

    def now_ms(self) -> int:
        return int(self.security_clock.now().timestamp() * 1000)

    async def post(self, headers: dict[str, str], body: bytes = BODY, path: str = "/graphql") -> httpx.Response:
        async with httpx.AsyncClient() as http:
            return await http.post(
                self.server.url + path, content=body, headers={**headers, "content-type": "application/json"}
            )

    async def refusal(self, headers: dict[str, str], body: bytes = BODY) -> str:
        response = await self.post(headers, body)
        assert response.status_code == 401, response.text
        [error] = response.json()["errors"]
        assert error["message"]
        return str(error["extensions"]["code"])


@pytest.fixture
async def signed(database: DatabaseTarget, tmp_path: Path) -> AsyncIterator[Signed]:
    settings = make_settings(database, tmp_path, request_signatures="required")
    security_clock = FixedClock(datetime.now(UTC).replace(microsecond=0))
    app = create_app(settings, clock=FixedClock(datetime.now(UTC)), security_clock=security_clock)
    live = await LiveServer(app).start()
    yield Signed(live, security_clock)
    await live.stop()


@pytest.mark.parametrize("algorithm", ["SM2-SM3", "RSA-SHA256"])
async def test_a_registered_app_signs_and_is_served(signed: Signed, algorithm: str) -> None:
    signer = await signed.app("wechat-mp", algorithm)
    response = await signed.post(signer.headers("POST", "/graphql", BODY, timestamp_ms=signed.now_ms()))
    assert response.status_code == 200 and response.json() == {"data": {"campuses": []}}
    client = GraphQLClient(signed.server.url, signer=signer)
    assert (await client.execute(CAMPUSES)) == {"campuses": []}  # the reference client signs by itself


async def test_each_refusal_has_its_own_code(signed: Signed) -> None:
    signer = await signed.app("wechat-mp")
    now = signed.now_ms()

    def fresh(**kwargs: object) -> dict[str, str]:
        return signer.headers("POST", "/graphql", BODY, timestamp_ms=now, **kwargs)  # type: ignore[arg-type]

    assert await signed.refusal({}) == "SIGNATURE_MISSING"
    assert await signed.refusal({**fresh(), signing.APP_ID: "nobody-app"}) == "APP_UNKNOWN"
    assert await signed.refusal({**fresh(), signing.SIGN_ALG: "RSA-SHA256"}) == "SIGNATURE_ALGORITHM_MISMATCH"
    assert await signed.refusal({**fresh(), signing.CERT_SERIAL: "ab" * 16}) == "CERT_UNKNOWN"
    assert await signed.refusal(fresh(), body=BODY.replace(b"name", b"id")) == "BODY_TAMPERED"
    stale = signer.headers("POST", "/graphql", BODY, timestamp_ms=now - 301_000)
    assert await signed.refusal(stale) == "TIMESTAMP_STALE"
    ahead = signer.headers("POST", "/graphql", BODY, timestamp_ms=now + 301_000)
    assert await signed.refusal(ahead) == "TIMESTAMP_STALE"

    # Another key, the app's serial: the signature is not the certificate key's.
    impostor = RequestSigner("wechat-mp", signer.serial, primitives.generate_signing_key("SM2-SM3"))
    forged = impostor.headers("POST", "/graphql", BODY, timestamp_ms=now)
    assert await signed.refusal(forged) == "SIGNATURE_INVALID"
    # Bytes that are no signature at all.
    headers = fresh()
    headers[signing.SIGNATURE] = base64.b64encode(b"\x00" * 70).decode()
    assert await signed.refusal(headers) == "SIGNATURE_INVALID"

    once = fresh()
    assert (await signed.post(once)).status_code == 200
    assert await signed.refusal(once) == "NONCE_REUSED"
    # A forged request never burns a nonce: the real one with the same nonce still passes.
    nonce = signing.new_nonce()
    assert await signed.refusal(impostor.headers("POST", "/graphql", BODY, timestamp_ms=now, nonce=nonce)) == (
        "SIGNATURE_INVALID"
    )
    assert (await signed.post(fresh(nonce=nonce))).status_code == 200


async def test_a_revoked_certificate_is_refused_at_once_and_an_expired_one_too(signed: Signed) -> None:
    signer = await signed.app("alipay-mp")
    deps = signed.server.deps
    assert (
        await signed.post(signer.headers("POST", "/graphql", BODY, timestamp_ms=signed.now_ms()))
    ).status_code == 200
    await apps.revoke_certificate(deps.db, deps.security_clock, serial=signer.serial, reason="key leaked")
    await deps.invalidate(apps.APPS_INVALIDATION)  # what the revoking mutation does
    revoked = signer.headers("POST", "/graphql", BODY, timestamp_ms=signed.now_ms())
    assert await signed.refusal(revoked) == "CERT_REVOKED"

    other = await signed.app("kiosk-1")
    signed.security_clock.advance(days=366)
    late = other.headers("POST", "/graphql", BODY, timestamp_ms=signed.now_ms())
    assert await signed.refusal(late) == "CERT_EXPIRED"


async def test_responses_are_signed_for_apps_that_ask_and_verify_with_the_served_certificate(signed: Signed) -> None:
    signer = await signed.app("his-callbacks", sign_responses=True)
    headers = signer.headers("POST", "/graphql", BODY, timestamp_ms=signed.now_ms())
    response = await signed.post(headers)
    assert response.status_code == 200
    gateway = signed.server.app.state.gateway_state
    server_key = gateway.response_signer.key.public_key()
    answer = {k.lower(): v for k, v in response.headers.items()}
    common = {"app_id": "his-callbacks", "request_nonce": headers[signing.NONCE], "status": 200, "headers": answer}
    assert signing.verify_response(server_key, body=response.content, **common)  # type: ignore[arg-type]
    assert not signing.verify_response(server_key, body=response.content + b" ", **common)  # type: ignore[arg-type]
    # The response certificate chains to the app CA the operators see.
    served = await httpx.AsyncClient().get(signed.server.url + "/security/certificates")
    chain = served.json()
    response_cert = certificates.parse(chain["responseCertificate"])
    assert response_cert.serial == answer[signing.CERT_SERIAL]
    assert certificates.verify_issued_by(response_cert, chain["authorities"]["SM2-SM3"])


async def test_unsigned_requests_are_refused_in_required_mode_also_on_websockets(signed: Signed) -> None:
    plain = GraphQLClient(signed.server.url)
    response = await plain.post(CAMPUSES)
    assert response.status_code == 401 and response.json()["errors"][0]["extensions"]["code"] == "SIGNATURE_MISSING"
    with pytest.raises(GraphQLError) as refused:
        async with plain.subscribe('subscription { queueUpdates(registrationId: "1") { position } }'):
            pass
    assert refused.value.codes == ["SIGNATURE_MISSING"]
    callback = await signed.post({}, body=b"{}", path="/callbacks/his/queue-changed")
    assert callback.status_code == 401


async def test_a_websocket_signs_its_connection_init(signed: Signed) -> None:
    signer = await signed.app("doctor-h5")
    client = GraphQLClient(signed.server.url, signer=signer)
    # Authenticated past the gateway: the subscription then fails on the missing login, not the signature.
    with pytest.raises(GraphQLError) as refused:
        async with client.subscribe('subscription { queueUpdates(registrationId: "1") { position } }') as events:
            async for _ in events:
                break
    assert "SIGNATURE" not in str(refused.value)


async def test_in_development_unsigned_traffic_passes_and_is_counted(server: LiveServer) -> None:
    response = await server.client().post(CAMPUSES)
    assert response.status_code == 200
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(server.url + "/metrics")).text
    assert "bff_unsigned_requests_total 1.0" in metrics


@pytest.fixture
async def two_instances(database: DatabaseTarget, tmp_path: Path) -> AsyncIterator[tuple[Signed, Signed]]:
    if not REDIS_URL:
        pytest.skip("needs REDIS_URL (TEST_REQUIRE_SERVICES=1 makes it required)")
    namespace = f"test-{secrets.token_hex(4)}"  # one deployment: both instances share it
    security_clock = FixedClock(datetime.now(UTC).replace(microsecond=0))
    started: list[Signed] = []
    try:
        for name in ("a", "b"):
            settings = make_settings(
                database,
                tmp_path / name,
                redis_url=REDIS_URL,
                broker_namespace=namespace,
                request_signatures="required",
            )
            app = create_app(settings, clock=FixedClock(datetime.now(UTC)), security_clock=security_clock)
            started.append(Signed(await LiveServer(app).start(), security_clock))
        yield started[0], started[1]
    finally:
        for signed in started:
            await signed.server.stop()


async def test_replicas_share_nonces_and_revocations_through_redis(two_instances: tuple[Signed, Signed]) -> None:
    a, b = two_instances
    signer = await a.app("partner-pharmacy")
    await a.server.deps.invalidate(apps.APPS_INVALIDATION)  # as the console's mutations do
    headers = signer.headers("POST", "/graphql", BODY, timestamp_ms=a.now_ms())
    for _ in range(100):  # b learns of the new app through the broadcast
        if b.server.app.state.gateway_state.verifier.registry.app("partner-pharmacy"):
            break
        await asyncio.sleep(0.02)
    assert (await a.post(headers)).status_code == 200
    assert await b.refusal(headers) == "NONCE_REUSED"  # replayed against the other replica

    await apps.revoke_certificate(a.server.deps.db, a.security_clock, serial=signer.serial, reason="partner left")
    await a.server.deps.invalidate(apps.APPS_INVALIDATION)
    for _ in range(100):  # b hears of it through Redis; until then its registry still holds the certificate
        response = await b.post(signer.headers("POST", "/graphql", BODY, timestamp_ms=b.now_ms()))
        if response.status_code == 401:
            break
        await asyncio.sleep(0.02)
    assert response.json()["errors"][0]["extensions"]["code"] == "CERT_REVOKED"


async def test_which_routes_need_a_signature_is_configuration(database: DatabaseTarget, tmp_path: Path) -> None:
    settings = make_settings(database, tmp_path, request_signatures="required", signed_routes=["/callbacks/"])
    live = await LiveServer(create_app(settings)).start()
    try:
        assert (await live.client().post(CAMPUSES)).status_code == 200  # /graphql is not guarded here
        async with httpx.AsyncClient() as http:
            callback = await http.post(live.url + "/callbacks/his/queue-changed", content=b"{}")
        assert callback.status_code == 401 and callback.json()["errors"][0]["extensions"]["code"] == "SIGNATURE_MISSING"
    finally:
        await live.stop()


async def test_a_websocket_can_sign_its_upgrade_request_instead(signed: Signed) -> None:
    signer = await signed.app("bedside-terminal")
    url = signed.server.url.replace("http", "ws", 1) + "/graphql"
    upgrade = signer.headers("GET", "/graphql", timestamp_ms=signed.now_ms())
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"], additional_headers=upgrade) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
    forged = {**upgrade, signing.NONCE: signing.new_nonce()}  # the nonce is signed: changing it breaks the signature
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"], additional_headers=forged):  # type: ignore[list-item]
            pass
