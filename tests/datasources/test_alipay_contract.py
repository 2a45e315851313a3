"""The Alipay contract, as one suite run against the sandbox in-process and against ``HttpAlipay``
talking over real HTTP (uvicorn on loopback) to the sandbox served as Alipay's gateway.

Async notifies always travel as real HTTP form POSTs to a receiver in the test, which verifies them
with the implementation under test and answers ``success``. Signatures are also checked
independently with ``cryptography`` against the documented rule (sorted ``k=v&...``, SHA256withRSA,
base64), so the implementation cannot agree with itself on a wrong rule.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import zipfile
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from datasources.alipay import contract as c
from datasources.alipay import wire
from datasources.alipay.http import HttpAlipay
from datasources.alipay.sandbox import SandboxAlipay
from datasources.alipay.served import alipay_gateway_app
from datasources.clock import FixedClock, local_date
from datasources.errors import SourceRejected, SourceUnavailable
from datasources.store.db import Database
from tests.conftest import LiveServer

IMPLEMENTATIONS = ["sandbox_in_process", "http_to_served_sandbox"]
APP_ID = "2021000000000001"
BUYER = "2088102146225135"


@dataclass(frozen=True)
class Keys:
    merchant: rsa.RSAPrivateKey
    platform: rsa.RSAPrivateKey
    stranger: rsa.RSAPrivateKey

    @property
    def merchant_config(self) -> c.MerchantConfig:
        return c.MerchantConfig(APP_ID, self.merchant, self.platform.public_key())

    @property
    def platform_config(self) -> c.PlatformConfig:
        return c.PlatformConfig(APP_ID, self.merchant.public_key(), self.platform)


@pytest.fixture(scope="module")
def keys() -> Keys:
    def new() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    return Keys(new(), new(), new())


@dataclass
class Receiver:
    """The merchant's notify endpoint: verifies with the implementation under test, answers success."""

    alipay: c.Alipay | None = None
    failures_before_success: int = 0
    posts: list[dict[str, str]] = field(default_factory=list)
    verified: list[c.Notification] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    url: str = ""

    def app(self) -> Starlette:
        async def notify(request: Request) -> Response:
            form = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
            self.posts.append(form)
            if self.failures_before_success > 0:
                self.failures_before_success -= 1
                return PlainTextResponse("busy", status_code=503)
            assert self.alipay is not None
            try:
                self.verified.append(self.alipay.parse_notification(form))
            except SourceRejected as exc:
                self.refused.append(exc.code)
                return PlainTextResponse("fail")
            return PlainTextResponse(c.NOTIFY_ACK)

        return Starlette(routes=[Route("/alipay/notify", notify, methods=["POST"])])


@dataclass
class Stage:
    alipay: c.Alipay
    sandbox: SandboxAlipay
    receiver: Receiver
    clock: FixedClock
    keys: Keys

    @property
    def notify_url(self) -> str:
        return self.receiver.url + "/alipay/notify"

    async def create(self, out_trade_no: str, amount_fen: int = 1250, **overrides: Any) -> c.CreatedTrade:
        values: dict[str, Any] = {
            "out_trade_no": out_trade_no, "subject": "挂号费 心内科 张医生", "amount_fen": amount_fen,
            "buyer_id": BUYER, "notify_url": self.notify_url, "expires_at": self.clock.now() + timedelta(minutes=15),
        }
        values.update(overrides)
        return await self.alipay.create_trade(**values)

    async def paid(self, out_trade_no: str, amount_fen: int = 1250) -> c.CreatedTrade:
        created = await self.create(out_trade_no, amount_fen)
        await self.sandbox.pay(out_trade_no)
        return created


async def serve(app: Starlette) -> LiveServer:
    return await LiveServer(app).start()


@pytest.fixture(params=IMPLEMENTATIONS)
async def stage(
    request: pytest.FixtureRequest, db: Database, clock: FixedClock, keys: Keys
) -> AsyncIterator[Stage]:
    sandbox = SandboxAlipay(db, clock, keys.platform_config, notify_attempts=3, notify_backoff_seconds=0.01)
    receiver = Receiver()
    receiving = await serve(receiver.app())
    receiver.url = receiving.url
    served: LiveServer | None = None
    client: HttpAlipay | None = None
    try:
        if request.param == "sandbox_in_process":
            receiver.alipay = sandbox
            yield Stage(sandbox, sandbox, receiver, clock, keys)
        else:
            served = await serve(alipay_gateway_app(lambda: sandbox))
            client = HttpAlipay(served.url + "/gateway.do", keys.merchant_config, timeout=5, clock=clock)
            receiver.alipay = client
            yield Stage(client, sandbox, receiver, clock, keys)
    finally:
        if client is not None:
            await client.aclose()
        if served is not None:
            await served.stop()
        await receiving.stop()
        await sandbox.aclose()


async def rejected(call: Awaitable[Any]) -> str:
    with pytest.raises(SourceRejected) as caught:
        await call
    return caught.value.code


def documented_content(params: dict[str, str], drop: tuple[str, ...]) -> bytes:
    """The documented rule, written here on its own: drop, skip empty values, sort, k=v joined by &."""
    pairs = sorted((k, v) for k, v in params.items() if k not in drop and v != "")
    return "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8")


def reference_verify(public_key: rsa.RSAPublicKey, signature_b64: str, content: bytes) -> bool:
    try:
        public_key.verify(base64.b64decode(signature_b64), content, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def reference_sign(key: rsa.RSAPrivateKey, content: bytes) -> str:
    return base64.b64encode(key.sign(content, padding.PKCS1v15(), hashes.SHA256())).decode()


# Trade, pay, notify ---------------------------------------------------------------------------------
async def test_created_trade_paid_in_the_app_is_notified_over_http_verified_and_queried_as_success(
    stage: Stage,
) -> None:
    created = await stage.create("REG20261123001", 1250)
    assert created.out_trade_no == "REG20261123001" and len(created.trade_no) == 28
    waiting = await stage.alipay.query("REG20261123001")
    assert (waiting.trade_status, waiting.total_fen, waiting.gmt_payment) == (c.WAIT_BUYER_PAY, 1250, None)

    await stage.sandbox.pay("REG20261123001")

    [form] = stage.receiver.posts
    assert form["total_amount"] == "12.50" and form["sign_type"] == "RSA2"
    assert reference_verify(
        stage.keys.platform.public_key(), form["sign"], documented_content(form, ("sign", "sign_type"))
    )
    [note] = stage.receiver.verified
    assert (note.out_trade_no, note.trade_no, note.trade_status, note.total_fen, note.buyer_id, note.app_id) == (
        "REG20261123001", created.trade_no, c.TRADE_SUCCESS, 1250, BUYER, APP_ID
    )
    assert note.gmt_payment == stage.clock.now().replace(microsecond=0)
    paid = await stage.alipay.query("REG20261123001")
    assert paid == c.Trade("REG20261123001", created.trade_no, c.TRADE_SUCCESS, 1250, BUYER, note.gmt_payment)


async def test_creating_again_returns_the_same_trade_and_other_terms_are_refused(stage: Stage) -> None:
    first = await stage.create("REG-A", 1250)
    assert await stage.create("REG-A", 1250) == first
    assert await rejected(stage.create("REG-A", 1251)) == c.CONTEXT_INCONSISTENT
    await stage.sandbox.pay("REG-A")
    assert await rejected(stage.create("REG-A", 1250)) == c.TRADE_HAS_SUCCESS
    assert await rejected(stage.alipay.query("NO-SUCH")) == c.TRADE_NOT_EXIST


async def test_a_receiver_that_does_not_answer_success_gets_the_notify_again(stage: Stage) -> None:
    stage.receiver.failures_before_success = 2
    await stage.create("REG-R")
    await stage.sandbox.pay("REG-R")
    assert len(stage.receiver.posts) == 3
    assert [n.trade_status for n in stage.receiver.verified] == [c.TRADE_SUCCESS]


async def test_duplicated_and_out_of_order_notifies_all_verify_and_carry_their_own_state(stage: Stage) -> None:
    await stage.create("REG-D", 2000)
    pay_notify = await stage.sandbox.pay("REG-D", deliver=False)
    await stage.alipay.refund(out_trade_no="REG-D", out_request_no="RF1", refund_fen=2000, reason="退号")
    ids = await stage.sandbox.notifications("REG-D")
    assert ids[0] == pay_notify and len(ids) == 2

    for notify_id in reversed(ids):  # the refund's notify overtakes the payment's
        assert await stage.sandbox.deliver(notify_id)
    assert await stage.sandbox.deliver(pay_notify)  # and the payment's comes twice

    seen = [(n.notify_id, n.trade_status, n.refund_fen, n.out_biz_no) for n in stage.receiver.verified]
    assert seen == [
        (ids[1], c.TRADE_CLOSED, 2000, "RF1"),
        (ids[0], c.TRADE_SUCCESS, None, None),
        (ids[0], c.TRADE_SUCCESS, None, None),
    ]
    assert await stage.sandbox.deliver_pending() == 0


# Refunds --------------------------------------------------------------------------------------------
async def test_a_partial_refund_then_the_rest_closes_the_trade(stage: Stage) -> None:
    created = await stage.paid("REG-P", 1250)
    first = await stage.alipay.refund(out_trade_no="REG-P", out_request_no="RF1", refund_fen=500, reason="部分退")
    assert first == c.RefundResult("REG-P", created.trade_no, "RF1", 500, 500, fund_change=True)
    assert (await stage.alipay.query("REG-P")).trade_status == c.TRADE_SUCCESS

    rest = await stage.alipay.refund(out_trade_no="REG-P", out_request_no="RF2", refund_fen=750, reason="")
    assert (rest.refunded_total_fen, rest.fund_change) == (1250, True)
    assert (await stage.alipay.query("REG-P")).trade_status == c.TRADE_CLOSED
    assert await stage.alipay.query_refund(out_trade_no="REG-P", out_request_no="RF2") == c.RefundQuery(
        "REG-P", created.trade_no, "RF2", 750, 1250, "REFUND_SUCCESS"
    )


async def test_refunds_beyond_the_paid_total_are_refused_and_change_nothing(stage: Stage) -> None:
    await stage.paid("REG-O", 1250)
    await stage.alipay.refund(out_trade_no="REG-O", out_request_no="RF1", refund_fen=1000, reason="")
    over = stage.alipay.refund(out_trade_no="REG-O", out_request_no="RF2", refund_fen=251, reason="")
    assert await rejected(over) == c.REFUND_AMT_NOT_EQUAL_TOTAL
    assert await stage.alipay.query_refund(out_trade_no="REG-O", out_request_no="RF2") is None
    last = await stage.alipay.refund(out_trade_no="REG-O", out_request_no="RF2", refund_fen=250, reason="")
    assert last.refunded_total_fen == 1250


async def test_the_same_refund_request_twice_refunds_once_and_another_amount_is_discordant(stage: Stage) -> None:
    await stage.paid("REG-I", 3000)
    first = await stage.alipay.refund(out_trade_no="REG-I", out_request_no="RF1", refund_fen=1000, reason="")
    again = await stage.alipay.refund(out_trade_no="REG-I", out_request_no="RF1", refund_fen=1000, reason="")
    assert (again.refund_fen, again.refunded_total_fen, again.fund_change) == (1000, 1000, False)
    assert first.fund_change
    other = stage.alipay.refund(out_trade_no="REG-I", out_request_no="RF1", refund_fen=999, reason="")
    assert await rejected(other) == c.DISCORDANT_REPEAT_REQUEST
    assert (await stage.alipay.query_refund(out_trade_no="REG-I", out_request_no="RF1") or first).refund_fen == 1000


async def test_unpaid_trades_close_and_closed_trades_cannot_be_paid_or_refunded(stage: Stage) -> None:
    await stage.create("REG-C")
    await stage.alipay.close("REG-C")
    await stage.alipay.close("REG-C")  # closing twice is fine
    assert (await stage.alipay.query("REG-C")).trade_status == c.TRADE_CLOSED
    assert await rejected(stage.sandbox.pay("REG-C")) == c.TRADE_HAS_CLOSE
    refund = stage.alipay.refund(out_trade_no="REG-C", out_request_no="RF1", refund_fen=100, reason="")
    assert await rejected(refund) == c.TRADE_STATUS_ERROR
    assert await rejected(stage.create("REG-C")) == c.TRADE_HAS_CLOSE
    assert await rejected(stage.alipay.close("NO-SUCH")) == c.TRADE_NOT_EXIST

    await stage.paid("REG-PAID")
    assert await rejected(stage.alipay.close("REG-PAID")) == c.TRADE_STATUS_ERROR

    await stage.create("REG-LATE")
    stage.clock.advance(minutes=16)  # past time_expire
    assert (await stage.alipay.query("REG-LATE")).trade_status == c.TRADE_CLOSED
    assert await rejected(stage.sandbox.pay("REG-LATE")) == c.TRADE_HAS_CLOSE


async def test_concurrent_refunds_never_pass_the_total_and_one_request_number_refunds_once(stage: Stage) -> None:
    await stage.paid("REG-X", 1000)
    same = await asyncio.gather(*[
        stage.alipay.refund(out_trade_no="REG-X", out_request_no="RF-SAME", refund_fen=300, reason="")
        for _ in range(10)
    ])
    assert sum(r.fund_change for r in same) == 1
    assert {r.refunded_total_fen for r in same} == {300}

    outcomes = await asyncio.gather(*[
        stage.alipay.refund(out_trade_no="REG-X", out_request_no=f"RF-{i}", refund_fen=200, reason="")
        for i in range(6)
    ], return_exceptions=True)
    done = [o for o in outcomes if isinstance(o, c.RefundResult)]
    refused = [o.code for o in outcomes if isinstance(o, SourceRejected)]
    assert (len(done), refused) == (3, [c.REFUND_AMT_NOT_EQUAL_TOTAL] * 3)
    last = await stage.alipay.refund(out_trade_no="REG-X", out_request_no="RF-LAST", refund_fen=100, reason="")
    assert last.refunded_total_fen == 1000
    assert (await stage.alipay.query("REG-X")).trade_status == c.TRADE_CLOSED


async def test_concurrent_creates_of_one_order_make_one_trade(stage: Stage) -> None:
    created = await asyncio.gather(*[stage.create("REG-TWIN", 880) for _ in range(8)])
    assert len({t.trade_no for t in created}) == 1


# The bill -------------------------------------------------------------------------------------------
async def test_the_day_bill_lists_payments_and_refunds_with_totals_exact_in_fen(stage: Stage) -> None:
    monday = local_date(stage.clock.now())
    amounts = {"B1": 1, "B2": 1999, "B3": 12345}
    for out_trade_no, fen in amounts.items():
        await stage.paid(out_trade_no, fen)
    await stage.alipay.refund(out_trade_no="B3", out_request_no="B3-RF1", refund_fen=345, reason="")
    await stage.alipay.refund(out_trade_no="B1", out_request_no="B1-RF1", refund_fen=1, reason="")
    assert await rejected(stage.alipay.bill(monday)) == c.BILL_NOT_EXIST  # the day is not over

    stage.clock.advance(days=1)
    await stage.paid("B-TUESDAY", 700)
    lines = await stage.alipay.bill(monday)

    payments = [line for line in lines if line.kind == "交易"]
    refunds = [line for line in lines if line.kind == "退款"]
    assert {line.out_trade_no: line.amount_fen for line in payments} == amounts
    assert sorted((line.out_trade_no, line.out_request_no, line.amount_fen) for line in refunds) == [
        ("B1", "B1-RF1", -1), ("B3", "B3-RF1", -345)
    ]
    assert sum(line.received_fen for line in lines) == 1 + 1999 + 12345 - 345 - 1
    assert all(len(line.trade_no) == 28 for line in lines)


# Forged notifies ------------------------------------------------------------------------------------
async def test_forged_notifies_are_refused_wrong_key_changed_amount_missing_sign_other_app(stage: Stage) -> None:
    await stage.paid("REG-F", 1250)
    [genuine] = stage.receiver.posts
    platform, stranger = stage.keys.platform, stage.keys.stranger

    def signed(form: dict[str, str], key: rsa.RSAPrivateKey) -> dict[str, str]:
        return {**form, "sign": reference_sign(key, documented_content(form, ("sign", "sign_type")))}

    changed = {**genuine, "total_amount": "0.01"}
    forged = {
        "wrong key": (signed(genuine, stranger), c.INVALID_SIGNATURE),
        "changed amount": (changed, c.INVALID_SIGNATURE),
        "missing sign": ({k: v for k, v in genuine.items() if k != "sign"}, c.MISSING_SIGNATURE),
        "other app": (signed({**genuine, "app_id": "2021999999999999"}, platform), c.INVALID_APP_ID),
    }
    for form, code in forged.values():
        with pytest.raises(SourceRejected) as caught:
            stage.alipay.parse_notification(form)
        assert caught.value.code == code
    async with httpx.AsyncClient() as http:
        for form, _ in forged.values():
            answer = await http.post(stage.notify_url, data=form)
            assert answer.text != c.NOTIFY_ACK
    assert stage.receiver.refused == [code for _, code in forged.values()]
    assert len(stage.receiver.verified) == 1
    # Re-signed by the platform with sign_type left out of the content, the same form verifies.
    assert stage.alipay.parse_notification(signed(changed, platform)).total_fen == 1


# Amounts --------------------------------------------------------------------------------------------
def test_yuan_strings_convert_exactly_and_more_than_two_decimals_are_refused() -> None:
    assert [wire.yuan_to_fen(v) for v in ("12.50", "0.01", "12.5", "100000000", "19.99")] == [
        1250, 1, 1250, 10_000_000_000, 1999
    ]
    assert [wire.fen_to_yuan(v) for v in (1250, 1, 0, -345, 10_000_000_000)] == [
        "12.50", "0.01", "0.00", "-3.45", "100000000.00"
    ]
    for bad in ("12.345", "1e2", "abc", "NaN", "", "0.001"):
        with pytest.raises(SourceRejected):
            wire.yuan_to_fen(bad)


# Only the HTTP side: signing on the wire, the gateway's checks, failures --------------------------------
class Recording:
    """A stand-in gateway that records each form and answers what the test gives it."""

    def __init__(self, answer: Any) -> None:
        self.forms: list[dict[str, str]] = []
        self.answer = answer

    def app(self) -> Starlette:
        async def gateway(request: Request) -> Response:
            form = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
            self.forms.append(form)
            status, body = self.answer(form)
            return Response(body, status_code=status, media_type="application/json")

        return Starlette(routes=[Route("/gateway.do", gateway, methods=["POST"])])


async def test_requests_are_signed_by_the_documented_rule_and_responses_verified_over_their_raw_text(
    keys: Keys, clock: FixedClock
) -> None:
    # The node text is spaced and ordered as no serializer here would write it: the client must verify
    # these exact bytes, not a re-serialization.
    node = '{ "msg":"Success","code":"10000", "trade_no":"2026112322001000000000000001","out_trade_no":"REG-W",' \
           '"buyer_user_id":"2088102146225135","trade_status":"TRADE_SUCCESS","total_amount":"12.50",' \
           '"send_pay_date":"2026-11-23 09:10:00" }'
    good = f'{{"alipay_trade_query_response":{node},"sign":"{reference_sign(keys.platform, node.encode())}"}}'
    tampered = good.replace('"12.50"', '"1250.00"')
    answers = iter([(200, good), (200, tampered), (200, tampered), (200, tampered)])
    recording = Recording(lambda form: next(answers))
    live = await serve(recording.app())
    client = HttpAlipay(live.url + "/gateway.do", keys.merchant_config, timeout=5, clock=clock, retries=2,
                        backoff_seconds=0.01)
    try:
        trade = await client.query("REG-W")
        assert (trade.total_fen, trade.trade_status) == (1250, c.TRADE_SUCCESS)
        with pytest.raises(SourceUnavailable, match="signature"):
            await client.query("REG-W")
    finally:
        await client.aclose()
        await live.stop()

    form = recording.forms[0]
    assert {k: form[k] for k in ("app_id", "method", "format", "charset", "sign_type", "version")} == {
        "app_id": APP_ID, "method": "alipay.trade.query", "format": "JSON", "charset": "utf-8",
        "sign_type": "RSA2", "version": "1.0",
    }
    assert form["timestamp"] == "2026-11-23 09:10:00"
    assert json.loads(form["biz_content"]) == {"out_trade_no": "REG-W"}
    assert reference_verify(keys.merchant.public_key(), form["sign"], documented_content(form, ("sign",)))
    assert len(recording.forms) == 4  # a query whose answers do not verify is retried, then unavailable


async def test_the_gateway_refuses_bad_signatures_with_40002_and_signs_its_answers(
    db: Database, clock: FixedClock, keys: Keys
) -> None:
    sandbox = SandboxAlipay(db, clock, keys.platform_config)
    live = await serve(alipay_gateway_app(lambda: sandbox))
    honest = HttpAlipay(live.url + "/gateway.do", keys.merchant_config, timeout=5, clock=clock)
    try:
        params = honest.signed_params("alipay.trade.query", {"out_trade_no": "X"})
        cases = {
            "stranger's key": ({**params, "sign": reference_sign(keys.stranger, documented_content(params, ("sign",)))},
                               "40002", c.INVALID_SIGNATURE),
            "changed after signing": ({**params, "biz_content": '{"out_trade_no":"Y"}'}, "40002", c.INVALID_SIGNATURE),
            "no sign": ({k: v for k, v in params.items() if k != "sign"}, "40001", c.MISSING_SIGNATURE),
            "other app": ({**params, "app_id": "2021999999999999"}, "40002", c.INVALID_APP_ID),
        }
        async with httpx.AsyncClient() as http:
            for form, code, sub_code in cases.values():
                answer = await http.post(live.url + "/gateway.do", data=form)
                body = answer.json()
                node = body.get("alipay_trade_query_response")
                assert (node["code"], node["sub_code"]) == (code, sub_code)
            answer = await http.post(live.url + "/gateway.do", data=params)
        text = answer.text
        node_text = text[text.index(":") + 1: text.rindex(',"sign"')]
        assert json.loads(node_text)["sub_code"] == c.TRADE_NOT_EXIST
        assert reference_verify(keys.platform.public_key(), answer.json()["sign"], node_text.encode())
        assert await rejected(honest.query("X")) == c.TRADE_NOT_EXIST
    finally:
        await honest.aclose()
        await live.stop()
        await sandbox.aclose()


async def test_writes_are_not_retried_queries_are_and_the_circuit_opens(keys: Keys, clock: FixedClock) -> None:
    recording = Recording(lambda form: (503, "busy"))
    live = await serve(recording.app())
    client = HttpAlipay(live.url + "/gateway.do", keys.merchant_config, timeout=5, clock=clock, retries=2,
                        backoff_seconds=0.01, failure_threshold=5, cooldown_seconds=60)
    try:
        with pytest.raises(SourceUnavailable, match="HTTP 503"):
            await client.refund(out_trade_no="T", out_request_no="R", refund_fen=1, reason="")
        assert len(recording.forms) == 1
        with pytest.raises(SourceUnavailable, match="HTTP 503"):
            await client.query("T")
        assert len(recording.forms) == 4
        with pytest.raises(SourceUnavailable):
            await client.query("T")
        with pytest.raises(SourceUnavailable, match="circuit open"):
            await client.query("T")
        assert len(recording.forms) == 5
    finally:
        await client.aclose()
        await live.stop()


async def test_the_bill_link_serves_alipays_file_once_a_zip_of_the_gbk_detail_csv(
    db: Database, clock: FixedClock, keys: Keys
) -> None:
    sandbox = SandboxAlipay(db, clock, keys.platform_config)
    live = await serve(alipay_gateway_app(lambda: sandbox))
    client = HttpAlipay(live.url + "/gateway.do", keys.merchant_config, timeout=5, clock=clock)
    monday = local_date(clock.now())
    try:
        await sandbox.create_trade(
            out_trade_no="Z1", subject="门诊缴费", amount_fen=4321, buyer_id=BUYER, notify_url="",
            expires_at=clock.now() + timedelta(minutes=5),
        )
        await sandbox.pay("Z1", deliver=False)
        clock.advance(days=1)
        params = client.signed_params(
            "alipay.data.dataservice.bill.downloadurl.query", {"bill_type": "trade", "bill_date": monday.isoformat()}
        )
        async with httpx.AsyncClient() as http:
            answer = (await http.post(live.url + "/gateway.do", data=params)).json()
            url = answer["alipay_data_dataservice_bill_downloadurl_query_response"]["bill_download_url"]
            first = await http.get(url)
            second = await http.get(url)
        assert (first.status_code, second.status_code) == (200, 404)
        with zipfile.ZipFile(io.BytesIO(first.content)) as archive:
            [name] = archive.namelist()
            text = archive.read(name).decode("gbk")
        assert name == "2088000000000001_20261123_业务明细.csv"
        rows = text.splitlines()
        assert rows[0] == "#支付宝业务明细查询" and rows[-1].startswith("#交易合计：1笔")
        header = next(r for r in rows if not r.startswith("#"))
        assert header.split(",")[11:13] == ["订单金额（元）", "商家实收（元）"]
        [line] = [r for r in rows if not r.startswith("#") and r != header]
        assert line.split(",")[1:4] == ["Z1\t", "交易", "门诊缴费"] and line.split(",")[11] == "43.21"
        assert [(b.out_trade_no, b.amount_fen) for b in await client.bill(monday)] == [("Z1", 4321)]
    finally:
        await client.aclose()
        await live.stop()
        await sandbox.aclose()


async def test_an_unreachable_gateway_is_unavailable_not_an_httpx_error(keys: Keys, clock: FixedClock) -> None:
    client = HttpAlipay("http://127.0.0.1:9/gateway.do", keys.merchant_config, timeout=1, clock=clock, retries=0)
    try:
        with pytest.raises(SourceUnavailable, match="transport error"):
            await client.create_trade(
                out_trade_no="T", subject="s", amount_fen=1, buyer_id=BUYER, notify_url="http://127.0.0.1:9/n",
                expires_at=clock.now() + timedelta(minutes=5),
            )
    finally:
        await client.aclose()
