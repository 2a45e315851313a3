"""The WeChat Pay v3 contract, one suite run against the sandbox in-process and against
``HttpWeChatPay`` over real HTTP (uvicorn on loopback) to the sandbox served as WeChat Pay's API.

Notifications travel as real HTTP POSTs to a small receiver started by the test, which verifies
and decrypts them with the implementation under test. The wire format is also checked on its own:
signatures and ciphertexts are made and checked here with ``cryptography`` directly, from the spec.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from datasources.clock import SHANGHAI, FixedClock, local_date
from datasources.errors import SourceRejected
from datasources.store.db import Database
from datasources.wechatpay import contract as c
from datasources.wechatpay import wire
from datasources.wechatpay.http import HttpWeChatPay
from datasources.wechatpay.sandbox import PlatformKeys, SandboxWeChatPay
from datasources.wechatpay.served import wechatpay_sandbox_app
from tests.conftest import LiveServer

IMPLEMENTATIONS = ["sandbox_in_process", "http_to_served_sandbox"]
MCHID, APPID, SERIAL = "1900009191", "wxd678efh567hg6787", "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
PUB_KEY_ID = "PUB_KEY_ID_0119000091912024112300000000000001"
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass
class Keys:
    merchant: rsa.RSAPrivateKey
    platform: rsa.RSAPrivateKey
    apiv3: bytes

    @property
    def config(self) -> c.MerchantConfig:
        return c.MerchantConfig(
            mchid=MCHID, appid=APPID, private_key_pem=_pem(self.merchant), certificate_serial=SERIAL,
            apiv3_key=self.apiv3, wechatpay_public_key_pem=_public_pem(self.platform),
            wechatpay_public_key_id=PUB_KEY_ID,
        )

    @property
    def platform_keys(self) -> PlatformKeys:
        return PlatformKeys(_pem(self.platform), PUB_KEY_ID, ((SERIAL, _public_pem(self.merchant)),))


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        secrets.token_bytes(32),
    )


@dataclass
class Receiver:
    """The merchant's notify_url: verifies and decrypts with the implementation under test."""

    pay: c.WeChatPay | None = None
    fail_next: int = 0
    received: list[c.Notification] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    hits: int = 0
    url: str = ""

    def app(self) -> Starlette:
        async def notify(request: Request) -> Response:
            self.hits += 1
            if self.fail_next > 0:
                self.fail_next -= 1
                return JSONResponse({"code": "FAIL", "message": "busy"}, status_code=500)
            assert self.pay is not None
            try:
                self.received.append(self.pay.parse_notification(dict(request.headers), await request.body()))
            except SourceRejected as exc:
                self.refused.append(exc.code)
                return JSONResponse({"code": "FAIL", "message": exc.detail}, status_code=401)
            return Response(status_code=204)

        return Starlette(routes=[Route("/notify/{kind}", notify, methods=["POST"])])


@dataclass
class Stage:
    pay: c.WeChatPay
    sandbox: SandboxWeChatPay
    receiver: Receiver
    clock: FixedClock
    keys: Keys

    @property
    def notify_url(self) -> str:
        return self.receiver.url + "/notify/pay"

    async def order(self, out_trade_no: str, amount_fen: int = 1250, description: str = "挂号费-心内科") -> str:
        expires = self.clock.now() + timedelta(minutes=15)
        prepay = await self.pay.prepay_jsapi(out_trade_no, description, amount_fen, OPENID, self.notify_url, expires)
        return prepay.prepay_id


@pytest.fixture(params=IMPLEMENTATIONS)
async def stage(request: pytest.FixtureRequest, db: Database, clock: FixedClock, keys: Keys) -> AsyncIterator[Stage]:
    sandbox = SandboxWeChatPay(db, clock, keys.config, keys.platform_keys, delivery_backoff_seconds=0.01)
    receiver = Receiver()
    receiving = await LiveServer(receiver.app()).start()
    receiver.url = receiving.url
    served: LiveServer | None = None
    client: HttpWeChatPay | None = None
    if request.param == "sandbox_in_process":
        impl: c.WeChatPay = sandbox
    else:
        served = await LiveServer(wechatpay_sandbox_app(lambda: sandbox)).start()
        client = HttpWeChatPay(served.url, keys.config, timeout=5, clock=clock)
        impl = client
    receiver.pay = impl
    try:
        yield Stage(impl, sandbox, receiver, clock, keys)
    finally:
        if client is not None:
            await client.aclose()
        if served is not None:
            await served.stop()
        await receiving.stop()


async def rejected(call: Awaitable[Any]) -> str:
    with pytest.raises(SourceRejected) as caught:
        await call
    return caught.value.code


# Paying -----------------------------------------------------------------------------------------
async def test_prepay_pay_notification_over_http_then_query_success(stage: Stage) -> None:
    prepay_id = await stage.order("REG20261123000001", 1250)
    assert prepay_id.startswith("wx")
    assert (await stage.pay.query("REG20261123000001")).trade_state == "NOTPAY"

    paid = await stage.sandbox.pay(prepay_id)

    assert len(stage.receiver.received) == 1
    note = stage.receiver.received[0]
    assert note.event_type == "TRANSACTION.SUCCESS" and note.refund is None
    assert note.transaction == paid
    queried = await stage.pay.query("REG20261123000001")
    assert queried == paid
    assert queried.trade_state == "SUCCESS" and queried.amount_fen == 1250 and queried.payer_total_fen == 1250
    assert queried.transaction_id and queried.transaction_id.startswith("42")
    assert queried.success_time == stage.clock.now().replace(microsecond=0)
    assert queried.payer_openid == OPENID and queried.mchid == MCHID and queried.appid == APPID


async def test_mini_program_pay_sign_verifies_with_the_merchant_public_key(stage: Stage) -> None:
    prepay_id = await stage.order("REG20261123000002")
    params = stage.pay.mini_program_payment(prepay_id)
    assert params["package"] == f"prepay_id={prepay_id}" and params["signType"] == "RSA"
    assert params["appId"] == APPID and params["timeStamp"] == str(int(stage.clock.now().timestamp()))
    assert 16 <= len(params["nonceStr"]) <= 32
    message = f"{APPID}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n".encode()
    public = stage.keys.merchant.public_key()
    public.verify(base64.b64decode(params["paySign"]), message, padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(InvalidSignature):
        public.verify(base64.b64decode(params["paySign"]), message.replace(b"prepay_id", b"prepay_iD"),
                      padding.PKCS1v15(), hashes.SHA256())


async def test_prepay_repeated_is_the_same_order_and_other_content_is_refused(stage: Stage) -> None:
    first = await stage.order("REG20261123000003", 1250)
    assert await stage.order("REG20261123000003", 1250) == first
    assert await rejected(stage.order("REG20261123000003", 1300)) == c.OUT_TRADE_NO_USED
    assert await rejected(stage.order("REG20261123000004", 0)) == c.PARAM_ERROR
    assert await rejected(stage.order("REG20261123000005", -5)) == c.PARAM_ERROR
    await stage.sandbox.pay(first)
    assert await rejected(stage.order("REG20261123000003", 1250)) == c.ORDERPAID
    assert await rejected(stage.pay.query("NO-SUCH-ORDER")) == c.ORDER_NOT_EXIST


async def test_duplicated_and_out_of_order_notifications_carry_the_same_facts(stage: Stage) -> None:
    one, two = await stage.order("REG-A", 100), await stage.order("REG-B", 200)
    await stage.sandbox.pay(one, deliver=False)
    await stage.sandbox.pay(two, deliver=False)
    assert stage.receiver.hits == 0
    sent = {n.out_trade_no: n.notify_id for n in await stage.sandbox.notifications()}
    assert await stage.sandbox.deliver(sent["REG-B"])
    assert await stage.sandbox.deliver(sent["REG-A"], copies=2)
    got = stage.receiver.received
    assert [(n.transaction.out_trade_no if n.transaction else None) for n in got] == ["REG-B", "REG-A", "REG-A"]
    assert got[1] == got[2] and got[1].id == sent["REG-A"]
    assert got[1].transaction == await stage.pay.query("REG-A")


async def test_delivery_retries_on_non_2xx_and_records_attempts(stage: Stage) -> None:
    stage.receiver.fail_next = 2
    await stage.sandbox.pay(await stage.order("REG-RETRY"))
    assert stage.receiver.hits == 3 and len(stage.receiver.received) == 1
    [row] = await stage.sandbox.notifications("REG-RETRY")
    assert row.attempts == 3 and row.last_status == 204 and row.delivered_at is not None

    stage.receiver.fail_next = 10
    await stage.sandbox.pay(await stage.order("REG-DOWN"))
    [row] = await stage.sandbox.notifications("REG-DOWN")
    assert row.attempts == 3 and row.last_status == 500 and row.delivered_at is None
    assert not await stage.sandbox.deliver(row.notify_id)  # still failing: three more attempts
    stage.receiver.fail_next = 0
    assert await stage.sandbox.deliver(row.notify_id)


# Closing ----------------------------------------------------------------------------------------
async def test_close_unpaid_then_paying_it_is_refused_and_paid_cannot_close(stage: Stage) -> None:
    prepay_id = await stage.order("REG-CLOSE")
    await stage.pay.close("REG-CLOSE")
    assert (await stage.pay.query("REG-CLOSE")).trade_state == "CLOSED"
    assert await rejected(stage.sandbox.pay(prepay_id)) == c.ORDER_CLOSED
    assert await rejected(stage.order("REG-CLOSE")) == c.ORDER_CLOSED
    assert stage.receiver.hits == 0

    await stage.sandbox.pay(await stage.order("REG-PAID"))
    assert await rejected(stage.pay.close("REG-PAID")) == c.ORDERPAID
    assert await rejected(stage.sandbox.pay("REG-PAID")) == c.ORDERPAID
    assert await rejected(stage.pay.close("NO-SUCH")) == c.ORDER_NOT_EXIST


async def test_an_expired_order_cannot_be_paid(stage: Stage) -> None:
    prepay_id = await stage.order("REG-LATE")
    stage.clock.advance(minutes=16)
    assert await rejected(stage.sandbox.pay(prepay_id)) == c.ORDER_CLOSED
    assert (await stage.pay.query("REG-LATE")).trade_state == "CLOSED"


# Refunds ----------------------------------------------------------------------------------------
async def test_refund_part_then_the_rest_and_beyond_is_not_enough(stage: Stage) -> None:
    await stage.sandbox.pay(await stage.order("REG-REFUND", 5000))
    refund_url = stage.receiver.url + "/notify/refund"
    first = await stage.pay.refund("REG-REFUND", "RF-1", 2000, 5000, "患者取消", refund_url)
    assert (first.status, first.refund_fen, first.total_fen, first.out_trade_no) == ("PROCESSING", 2000, 5000, "REG-REFUND")
    assert await stage.pay.refund("REG-REFUND", "RF-1", 2000, 5000, "患者取消", refund_url) == first
    assert await rejected(stage.pay.refund("REG-REFUND", "RF-2", 3001, 5000, "", refund_url)) == c.NOT_ENOUGH
    rest = await stage.pay.refund("REG-REFUND", "RF-2", 3000, 5000, "", refund_url)
    assert await rejected(stage.pay.refund("REG-REFUND", "RF-3", 1, 5000, "", refund_url)) == c.NOT_ENOUGH
    assert await rejected(stage.pay.refund("REG-REFUND", "RF-4", 0, 5000, "", refund_url)) == c.PARAM_ERROR
    assert (await stage.pay.query("REG-REFUND")).trade_state == "REFUND"

    stage.receiver.received.clear()
    await stage.sandbox.settle_refunds()
    assert sorted((n.event_type, n.refund.out_refund_no, n.refund.refund_fen)  # type: ignore[union-attr]
                  for n in stage.receiver.received) == [("REFUND.SUCCESS", "RF-1", 2000), ("REFUND.SUCCESS", "RF-2", 3000)]
    done = await stage.pay.query_refund("RF-2")
    assert done.status == "SUCCESS" and done.refund_id == rest.refund_id and done.success_time is not None
    assert await rejected(stage.pay.query_refund("RF-404")) == c.RESOURCE_NOT_EXISTS


async def test_a_failed_refund_gives_the_amount_back_and_unpaid_orders_cannot_refund(stage: Stage) -> None:
    await stage.order("REG-UNPAID", 800)
    assert await rejected(stage.pay.refund("REG-UNPAID", "RF-U", 800, 800, "", "")) == c.INVALID_REQUEST
    assert await rejected(stage.pay.refund("NO-SUCH", "RF-N", 800, 800, "", "")) == c.ORDER_NOT_EXIST
    await stage.sandbox.pay("REG-UNPAID")
    assert await rejected(stage.pay.refund("REG-UNPAID", "RF-T", 100, 900, "", "")) == c.INVALID_REQUEST
    await stage.pay.refund("REG-UNPAID", "RF-X", 800, 800, "", "")
    await stage.sandbox.settle_refund("RF-X", "ABNORMAL")
    assert (await stage.pay.query_refund("RF-X")).status == "ABNORMAL"
    again = await stage.pay.refund("REG-UNPAID", "RF-Y", 800, 800, "", "")
    assert again.status == "PROCESSING"


# The trade bill ---------------------------------------------------------------------------------
async def test_trade_bill_lists_the_days_payments_and_refunds_with_exact_fen(stage: Stage) -> None:
    day = local_date(stage.clock.now())
    await stage.sandbox.pay(await stage.order("BILL-1", 1250))
    stage.clock.advance(minutes=5)
    await stage.sandbox.pay(await stage.order("BILL-2", 3))
    stage.clock.advance(minutes=5)
    await stage.sandbox.pay(await stage.order("BILL-3", 99999))
    await stage.pay.refund("BILL-3", "BILL-RF-1", 33333, 99999, "", "")
    await stage.sandbox.settle_refund("BILL-RF-1")
    await stage.order("BILL-UNPAID", 700)
    assert await rejected(stage.pay.trade_bill(day)) == c.NO_STATEMENT_EXIST

    stage.clock.advance(days=1)
    await stage.sandbox.pay(await stage.order("BILL-NEXT-DAY", 500))
    stage.clock.advance(days=1)
    lines = await stage.pay.trade_bill(day)
    assert [(ln.out_trade_no, ln.trade_state, ln.settlement_total_fen, ln.refund_fen) for ln in lines] == [
        ("BILL-1", "SUCCESS", 1250, 0),
        ("BILL-2", "SUCCESS", 3, 0),
        ("BILL-3", "SUCCESS", 99999, 0),
        ("BILL-3", "REFUND", 0, 33333),
    ]
    assert sum(ln.settlement_total_fen for ln in lines) == 101252
    assert sum(ln.refund_fen for ln in lines) == 33333
    bill_3 = await stage.pay.query("BILL-3")
    assert lines[2].transaction_id == lines[3].transaction_id == bill_3.transaction_id
    assert lines[3].out_refund_no == "BILL-RF-1" and lines[0].openid == OPENID
    assert [ln.trade_state for ln in await stage.pay.trade_bill(day + timedelta(days=1))] == ["SUCCESS"]


async def test_bill_text_has_the_real_format(stage: Stage) -> None:
    await stage.sandbox.pay(await stage.order("FMT-1", 1205))
    stage.clock.advance(days=1)
    text = await stage.sandbox.bill_text(local_date(stage.clock.now()) - timedelta(days=1))
    rows = text.split("\r\n")
    assert rows[0].startswith("交易时间,公众账号ID,商户号,")
    assert rows[1].startswith("`2026-11-23 09:10:00,`" + APPID + ",`" + MCHID + ",")
    assert ",`FMT-1,`" + OPENID + ",`JSAPI,`SUCCESS," in rows[1] and ",`12.05," in rows[1]
    assert rows[2] == "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
    assert rows[3] == "`1,`12.05,`0.00,`0.00,`0.00000,`12.05,`0.00"
    tampered = text.replace("`12.05,`0.00,`0.00", "`12.06,`0.00,`0.00")
    with pytest.raises(wire.WireError):
        wire.parse_bill(tampered)


# Notifications: made here from the spec, then forged --------------------------------------------
def make_notification(
    keys: Keys, plain: dict[str, Any], *, at: int, key: rsa.RSAPrivateKey | None = None, serial: str = PUB_KEY_ID,
    apiv3: bytes | None = None,
) -> tuple[dict[str, str], bytes]:
    nonce = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
    sealed = AESGCM(apiv3 or keys.apiv3).encrypt(nonce.encode(), json.dumps(plain).encode(), b"transaction")
    body = json.dumps({
        "id": "EV-TEST-1", "create_time": "2026-11-23T09:10:00+08:00", "resource_type": "encrypt-resource",
        "event_type": "TRANSACTION.SUCCESS", "summary": "支付成功",
        "resource": {"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
                     "ciphertext": base64.b64encode(sealed).decode(), "associated_data": "transaction", "nonce": nonce},
    }).encode()
    header_nonce = secrets.token_hex(16)
    message = f"{at}\n{header_nonce}\n".encode() + body + b"\n"
    signature = (key or keys.platform).sign(message, padding.PKCS1v15(), hashes.SHA256())
    headers = {
        "Wechatpay-Timestamp": str(at), "Wechatpay-Nonce": header_nonce, "Wechatpay-Serial": serial,
        "Wechatpay-Signature": base64.b64encode(signature).decode(), "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
    }
    return headers, body


PLAIN = {
    "appid": APPID, "mchid": MCHID, "out_trade_no": "REG-SPEC", "transaction_id": "4200002026112300000001",
    "trade_type": "JSAPI", "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
    "success_time": "2026-11-23T09:09:30+08:00", "payer": {"openid": OPENID},
    "amount": {"total": 1250, "payer_total": 1250, "currency": "CNY", "payer_currency": "CNY"},
}


async def test_notification_made_from_the_spec_is_accepted(stage: Stage) -> None:
    now = int(stage.clock.now().timestamp())
    headers, body = make_notification(stage.keys, PLAIN, at=now)
    note = stage.pay.parse_notification(headers, body)
    assert note.id == "EV-TEST-1" and note.transaction is not None
    assert (note.transaction.out_trade_no, note.transaction.amount_fen) == ("REG-SPEC", 1250)
    assert note.transaction.success_time is not None and note.transaction.success_time.tzinfo is not None
    lower = {k.lower(): v for k, v in headers.items()}
    assert stage.pay.parse_notification(lower, body) == note


async def test_forged_notifications_are_refused(stage: Stage) -> None:
    now = int(stage.clock.now().timestamp())
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = [
        make_notification(stage.keys, PLAIN, at=now, key=stranger),  # wrong key
        make_notification(stage.keys, PLAIN, at=now - 301),  # stale
        make_notification(stage.keys, PLAIN, at=now + 301),  # from the future
        make_notification(stage.keys, PLAIN, at=now, serial="PUB_KEY_ID_UNKNOWN"),  # key not ours
        make_notification(stage.keys, PLAIN, at=now, apiv3=os.urandom(32)),  # sealed with another APIv3 key
    ]
    headers, body = make_notification(stage.keys, PLAIN, at=now)
    envelope = json.loads(body)
    raw = bytearray(base64.b64decode(envelope["resource"]["ciphertext"]))
    raw[3] ^= 0x01
    envelope["resource"]["ciphertext"] = base64.b64encode(bytes(raw)).decode()
    tampered_body = json.dumps(envelope).encode()
    forged.append((headers, tampered_body))  # tampered body under the old signature
    nonce = secrets.token_hex(8)
    signature = stage.keys.platform.sign(f"{now}\n{nonce}\n".encode() + tampered_body + b"\n", padding.PKCS1v15(),
                                         hashes.SHA256())
    forged.append(({**headers, "Wechatpay-Nonce": nonce, "Wechatpay-Signature": base64.b64encode(signature).decode()},
                   tampered_body))  # properly signed, but the ciphertext was altered
    forged.append(({k: v for k, v in headers.items() if k != "Wechatpay-Signature"}, body))  # unsigned
    for h, b in forged:
        with pytest.raises(SourceRejected) as caught:
            stage.pay.parse_notification(h, b)
        assert caught.value.code == c.SIGN_ERROR


async def test_the_receiver_refuses_a_forged_post_over_http(stage: Stage) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    headers, body = make_notification(stage.keys, PLAIN, at=int(stage.clock.now().timestamp()), key=stranger)
    async with httpx.AsyncClient() as http:
        response = await http.post(stage.notify_url, content=body, headers=headers)
    assert response.status_code == 401 and stage.receiver.refused == [c.SIGN_ERROR]


# Wire helpers ------------------------------------------------------------------------------------
def test_yuan_and_fen_convert_exactly() -> None:
    assert [wire.yuan(f) for f in (0, 3, 1250, 99999, 100000000)] == ["0.00", "0.03", "12.50", "999.99", "1000000.00"]
    assert [wire.fen_of_yuan(t) for t in ("0.00", "0.03", "12.5", "999.99", "1000000")] == [0, 3, 1250, 99999, 100000000]
    for bad in ("1.005", "abc", "NaN", "Infinity"):
        with pytest.raises(wire.WireError):
            wire.fen_of_yuan(bad)


def test_times_are_rfc3339_in_shanghai() -> None:
    at = wire.parse_time("2026-11-23T09:10:00+08:00")
    assert wire.rfc3339(at.astimezone(SHANGHAI)) == "2026-11-23T09:10:00+08:00"
    with pytest.raises(wire.WireError):
        wire.parse_time("2026-11-23T09:10:00")
    assert date(2026, 11, 23) == wire.parse_bill_date("2026-11-23")


def test_merchant_config_needs_a_32_byte_apiv3_key(keys: Keys) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        c.MerchantConfig(MCHID, APPID, b"", SERIAL, b"short", b"", PUB_KEY_ID)


def test_primitives_added_for_wechat_pay_seal_with_a_given_nonce_and_sha1() -> None:
    import hashlib

    from datasources.crypto.primitives import CryptoError, Sealer, digest

    key, nonce = os.urandom(32), b"abcdefghijkl"
    sealed = Sealer("A256GCM", key).seal(b"resource", b"transaction", nonce=nonce)
    assert sealed == nonce + AESGCM(key).encrypt(nonce, b"resource", b"transaction")
    assert Sealer("A256GCM", key).open(sealed, b"transaction") == b"resource"
    with pytest.raises(CryptoError):
        Sealer("A256GCM", key).seal(b"x", nonce=b"short")
    assert Sealer("A256GCM", key).seal(b"x")[:12] != Sealer("A256GCM", key).seal(b"x")[:12]
    assert digest("SHA1", b"bill") == hashlib.sha1(b"bill", usedforsecurity=False).digest()


async def test_concurrent_refunds_never_return_more_than_was_paid(stage: Stage) -> None:
    await stage.sandbox.pay(await stage.order("REG-RACE", 1000))
    results = await asyncio.gather(
        *(stage.pay.refund("REG-RACE", f"RACE-{i}", 300, 1000, "", "") for i in range(6)), return_exceptions=True
    )
    won = [r for r in results if isinstance(r, c.Refund)]
    lost = [r for r in results if isinstance(r, SourceRejected)]
    assert len(won) == 3 and len(lost) == 3 and {r.code for r in lost} == {c.NOT_ENOUGH}
    assert await stage.pay.refund("REG-RACE", "RACE-LAST", 100, 1000, "", "") is not None
    assert await rejected(stage.pay.refund("REG-RACE", "RACE-MORE", 1, 1000, "", "")) == c.NOT_ENOUGH


async def test_paying_twice_at_once_pays_once(stage: Stage) -> None:
    prepay_id = await stage.order("REG-TWICE", 100)
    results = await asyncio.gather(stage.sandbox.pay(prepay_id), stage.sandbox.pay(prepay_id), return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["SourceRejected", "Transaction"]
    assert [n.event_type for n in await stage.sandbox.notifications("REG-TWICE")] == ["TRANSACTION.SUCCESS"]


def test_a_platform_certificate_key_verifies_too_and_other_merchants_are_refused(keys: Keys) -> None:
    certificate_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    config = c.MerchantConfig(
        **{**{f: getattr(keys.config, f) for f in keys.config.__dataclass_fields__},
           "platform_certificates": (("3775B6A45ACD588826D15E583A95F5DD", _public_pem(certificate_key)),)}
    )
    now = FixedClock(wire.parse_time("2026-11-23T09:10:00+08:00"))
    at = int(now.now().timestamp())
    headers, body = make_notification(keys, PLAIN, at=at, key=certificate_key, serial="3775B6A45ACD588826D15E583A95F5DD")
    assert wire.parse_notification(config, headers, body, now.now()).transaction is not None
    with pytest.raises(SourceRejected):  # the same key under the public key's id is not the right key
        wire.parse_notification(config, *make_notification(keys, PLAIN, at=at, key=certificate_key), now.now())
    other = {**PLAIN, "mchid": "1900000109"}
    with pytest.raises(SourceRejected):
        wire.parse_notification(config, *make_notification(keys, other, at=at), now.now())
