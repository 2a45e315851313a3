"""What only the HTTP side has: the served API's checks of the merchant's Authorization, the
client's refusal of unsigned or forged answers, retries of GETs only, timeouts, the circuit breaker.
Requests and answers are also signed and checked here with ``cryptography`` directly, by the spec."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from datasources.clock import FixedClock
from datasources.crypto.primitives import load_private_key
from datasources.errors import SourceRejected, SourceUnavailable
from datasources.store.db import Database
from datasources.wechatpay import contract as c
from datasources.wechatpay import wire
from datasources.wechatpay.http import HttpWeChatPay
from datasources.wechatpay.sandbox import SandboxWeChatPay
from datasources.wechatpay.served import wechatpay_sandbox_app
from tests.conftest import LiveServer
from tests.datasources.test_wechatpay_contract import MCHID, OPENID, PUB_KEY_ID, SERIAL, Keys, keys  # noqa: F401


def spec_authorization(key: rsa.RSAPrivateKey, method: str, target: str, body: str, at: int, serial: str = SERIAL) -> str:
    nonce = secrets.token_hex(16)
    message = f"{method}\n{target}\n{at}\n{nonce}\n{body}\n".encode()
    signature = base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
    return (
        f'WECHATPAY2-SHA256-RSA2048 mchid="{MCHID}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{at}",serial_no="{serial}"'
    )


@dataclass
class Served:
    url: str
    sandbox: SandboxWeChatPay
    clock: FixedClock


@pytest.fixture
async def served(db: Database, clock: FixedClock, keys: Keys) -> AsyncIterator[Served]:  # noqa: F811
    sandbox = SandboxWeChatPay(db, clock, keys.config, keys.platform_keys)
    live = await LiveServer(wechatpay_sandbox_app(lambda: sandbox)).start()
    try:
        yield Served(live.url, sandbox, clock)
    finally:
        await live.stop()


def prepay_body(clock: FixedClock, out_trade_no: str = "SPEC-1") -> str:
    return json.dumps({
        "appid": "wxd678efh567hg6787", "mchid": MCHID, "description": "挂号费", "out_trade_no": out_trade_no,
        "time_expire": wire.rfc3339(clock.now() + timedelta(minutes=10)), "notify_url": "https://bff.example/notify",
        "amount": {"total": 1, "currency": "CNY"}, "payer": {"openid": OPENID},
    }, ensure_ascii=False)


async def test_a_request_signed_by_the_spec_is_served_and_its_answer_verifies(served: Served, keys: Keys) -> None:  # noqa: F811
    at = int(served.clock.now().timestamp())
    body = prepay_body(served.clock)
    path = "/v3/pay/transactions/jsapi"
    async with httpx.AsyncClient(base_url=served.url) as http:
        response = await http.post(path, content=body.encode(), headers={
            "Authorization": spec_authorization(keys.merchant, "POST", path, body, at),
            "Content-Type": "application/json", "Accept": "application/json",
        })
        assert response.status_code == 200 and response.json()["prepay_id"].startswith("wx")
        h = response.headers
        assert h["Wechatpay-Serial"] == PUB_KEY_ID
        message = f"{h['Wechatpay-Timestamp']}\n{h['Wechatpay-Nonce']}\n".encode() + response.content + b"\n"
        keys.platform.public_key().verify(
            base64.b64decode(h["Wechatpay-Signature"]), message, padding.PKCS1v15(), hashes.SHA256()
        )
        # GET: the signed URL is the path with its query string, the body empty.
        target = f"/v3/pay/transactions/out-trade-no/SPEC-1?mchid={MCHID}"
        got = await http.get(target, headers={"Authorization": spec_authorization(keys.merchant, "GET", target, "", at)})
        assert got.status_code == 200 and got.json()["trade_state"] == "NOTPAY"
        assert got.json()["amount"] == {"total": 1, "currency": "CNY"}


async def test_bad_signatures_get_401_sign_error_signed(served: Served, keys: Keys) -> None:  # noqa: F811
    at = int(served.clock.now().timestamp())
    body, path = prepay_body(served.clock, "SPEC-2"), "/v3/pay/transactions/jsapi"
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "stranger's key": spec_authorization(stranger, "POST", path, body, at),
        "other body signed": spec_authorization(keys.merchant, "POST", path, body.replace("SPEC-2", "SPEC-3"), at),
        "other path signed": spec_authorization(keys.merchant, "POST", path + "?x=1", body, at),
        "unknown serial": spec_authorization(keys.merchant, "POST", path, body, at, serial="0000"),
        "stale": spec_authorization(keys.merchant, "POST", path, body, at - 301),
        "other schema": spec_authorization(keys.merchant, "POST", path, body, at).replace("RSA2048", "SM2"),
        "none": "",
    }
    async with httpx.AsyncClient(base_url=served.url) as http:
        for name, authorization in cases.items():
            response = await http.post(path, content=body.encode(), headers={"Authorization": authorization})
            assert response.status_code == 401, name
            assert response.json()["code"] == c.SIGN_ERROR, name
            assert response.headers["Wechatpay-Signature"], name
    with pytest.raises(SourceRejected) as caught:
        await served.sandbox.query("SPEC-2")
    assert caught.value.code == c.ORDER_NOT_EXIST  # nothing was created


async def test_error_bodies_carry_code_message_and_real_statuses(served: Served, keys: Keys) -> None:  # noqa: F811
    at = int(served.clock.now().timestamp())
    async with httpx.AsyncClient(base_url=served.url) as http:
        target = f"/v3/pay/transactions/out-trade-no/NOPE?mchid={MCHID}"
        got = await http.get(target, headers={"Authorization": spec_authorization(keys.merchant, "GET", target, "", at)})
        assert got.status_code == 404 and got.json()["code"] == c.ORDER_NOT_EXIST and got.json()["message"]
        body, path = prepay_body(served.clock).replace('"total": 1', '"total": 1.5'), "/v3/pay/transactions/jsapi"
        got = await http.post(path, content=body.encode(), headers={
            "Authorization": spec_authorization(keys.merchant, "POST", path, body, at)})
        assert got.status_code == 400 and got.json()["code"] == c.PARAM_ERROR


# The client against answers that are not WeChat Pay's ---------------------------------------------------
@dataclass
class Fake:
    hits: int = 0
    mode: str = "unsigned"
    url: str = ""


@pytest.fixture
async def fake(keys: Keys, clock: FixedClock) -> AsyncIterator[Fake]:  # noqa: F811
    state = Fake()
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    async def anything(request: Request) -> Response:
        state.hits += 1
        if state.mode == "500":
            return JSONResponse({"code": "SYSTEM_ERROR", "message": "busy"}, status_code=500)
        if state.mode == "slow":
            await asyncio.sleep(1.0)
        body = json.dumps({"prepay_id": "wx-forged", "code": "x"}).encode()
        if state.mode == "unsigned":
            return Response(body, media_type="application/json")
        signer = stranger if state.mode == "forged" else keys.platform
        pem = signer.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
        headers = wire.signed_headers(load_private_key(pem), PUB_KEY_ID, body, int(clock.now().timestamp()))
        return Response(body, media_type="application/json", headers=headers)

    live = await LiveServer(Starlette(routes=[Route("/{p:path}", anything, methods=["GET", "POST"])])).start()
    state.url = live.url
    try:
        yield state
    finally:
        await live.stop()


def client(fake: Fake, keys: Keys, clock: FixedClock, **kw: float) -> HttpWeChatPay:  # noqa: F811
    return HttpWeChatPay(fake.url, keys.config, clock=clock, backoff_seconds=0.01, **kw)  # type: ignore[arg-type]


async def prepay(pay: HttpWeChatPay, clock: FixedClock) -> c.Prepay:
    return await pay.prepay_jsapi("F-1", "x", 1, OPENID, "https://bff.example/n", clock.now() + timedelta(minutes=5))


async def test_unsigned_and_forged_answers_are_not_believed(fake: Fake, keys: Keys, clock: FixedClock) -> None:  # noqa: F811
    pay = client(fake, keys, clock, timeout=5)
    try:
        for mode in ("unsigned", "forged"):
            fake.mode = mode
            with pytest.raises(SourceUnavailable, match="not verified"):
                await prepay(pay, clock)
        fake.mode = "signed"
        assert (await prepay(pay, clock)).prepay_id == "wx-forged"  # the same answer, properly signed
    finally:
        await pay.aclose()


async def test_only_gets_are_retried_and_the_breaker_opens(fake: Fake, keys: Keys, clock: FixedClock) -> None:  # noqa: F811
    fake.mode = "500"
    pay = client(fake, keys, clock, timeout=5, retries=2, failure_threshold=4, cooldown_seconds=60)
    try:
        with pytest.raises(SourceUnavailable):
            await pay.query("F-1")
        assert fake.hits == 3
        with pytest.raises(SourceUnavailable):
            await pay.close("F-1")
        assert fake.hits == 4  # a write is sent once: its outcome is unknown, not retried
        with pytest.raises(SourceUnavailable, match="circuit open"):
            await pay.query("F-1")
        assert fake.hits == 4
    finally:
        await pay.aclose()


async def test_a_slow_answer_times_out(fake: Fake, keys: Keys, clock: FixedClock) -> None:  # noqa: F811
    fake.mode = "slow"
    pay = client(fake, keys, clock, timeout=0.2, retries=0)
    try:
        with pytest.raises(SourceUnavailable, match="timed out"):
            await prepay(pay, clock)
    finally:
        await pay.aclose()
