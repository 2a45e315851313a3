"""WeChat Pay medical-insurance orders (``WeChatMedInsPay``), one suite run against the sandbox
in-process and against ``HttpWeChatPay`` over real HTTP to the sandbox served as WeChat Pay's API.

Callbacks travel as real HTTP POSTs to a receiver started by the test, verified and decrypted by the
implementation under test; forged ones are made here with ``cryptography`` directly, from the spec.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from datasources.clock import FixedClock
from datasources.errors import SourceRejected, SourceUnavailable
from datasources.store.db import Database
from datasources.wechatpay import contract as c
from datasources.wechatpay import medins_contract as m
from datasources.wechatpay import medins_wire
from datasources.wechatpay.http import HttpWeChatPay
from datasources.wechatpay.medins_sandbox import SandboxWeChatMedInsPay
from datasources.wechatpay.sandbox import SandboxWeChatPay
from datasources.wechatpay.served import wechatpay_sandbox_app
from tests.conftest import LiveServer
from tests.datasources.test_wechatpay_contract import APPID, OPENID, PUB_KEY_ID, Keys, keys  # noqa: F401
from tests.datasources.test_wechatpay_http import Fake, client, fake, spec_authorization  # noqa: F401

IMPLEMENTATIONS = ["sandbox_in_process", "http_to_served_sandbox"]
PAYER = m.Person.of("张三", "44030019000101123x")


@dataclass
class Receiver:
    """The merchant's notify URLs: JSAPI payments and med-ins callbacks, parsed by the implementation."""

    pay: c.WeChatPay | None = None
    med: m.WeChatMedInsPay | None = None
    payments: list[c.Notification] = field(default_factory=list)
    callbacks: list[m.MedInsNotification] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    url: str = ""

    def app(self) -> Starlette:
        async def payment(request: Request) -> Response:
            assert self.pay is not None
            self.payments.append(self.pay.parse_notification(dict(request.headers), await request.body()))
            return Response(status_code=204)

        async def med_ins(request: Request) -> Response:
            assert self.med is not None
            try:
                self.callbacks.append(self.med.parse_med_ins_notification(dict(request.headers), await request.body()))
            except SourceRejected as exc:
                self.refused.append(exc.code)
                return JSONResponse({"code": "FAIL", "message": exc.detail}, status_code=401)
            return Response(status_code=204)

        return Starlette(routes=[Route("/notify/pay", payment, methods=["POST"]),
                                 Route("/notify/med-ins", med_ins, methods=["POST"])])


@dataclass
class Stage:
    pay: c.WeChatPay
    med: m.WeChatMedInsPay
    sandbox: SandboxWeChatMedInsPay
    receiver: Receiver
    clock: FixedClock
    keys: Keys

    async def prepay(self, out_trade_no: str, amount_fen: int) -> str:
        expires = self.clock.now() + timedelta(minutes=15)
        url = self.receiver.url + "/notify/pay"
        return (await self.pay.prepay_jsapi(out_trade_no, "门诊缴费", amount_fen, OPENID, url, expires)).prepay_id

    def request(self, kind: str, out_trade_no: str, prepay_id: str | None = None, **changes: Any) -> m.MedInsOrderRequest:
        """A documented example per mix_pay_type, its amounts adding up."""
        common: dict[str, Any] = dict(
            order_type="DIAG_PAY", openid=OPENID, payer=PAYER, out_trade_no=out_trade_no,
            serial_no="1217752501201", city_id="440300", med_inst_name="市第一人民医院", med_inst_no="H44030000001",
            callback_url=self.receiver.url + "/notify/med-ins", attach="visit-42",
        )
        insurance: dict[str, Any] = dict(
            pay_order_id="ORD440300202611230910000001", pay_auth_no="AUTH440300202611230905000001",
            geo_location="114.057868,22.543099", med_ins_order_create_time=self.clock.now(),
        )
        if kind == "CASH_AND_INSURANCE":  # 150.00 insurance, 50.00 own pay + 2.00 freight − 10.00 deposit
            amounts: dict[str, Any] = dict(
                total_fee=20200, med_ins_gov_fee=10000, med_ins_self_fee=4500, med_ins_other_fee=500,
                med_ins_cash_fee=5000, wechat_pay_cash_fee=4200, prepay_id=prepay_id,
                cash_add_detail=(m.CashAdd(200, "FREIGHT"),),
                cash_reduce_detail=(m.CashReduce(1000, "DEPOSIT_DEDUCTION"),), **insurance,
            )
        elif kind == "INSURANCE_ONLY":
            amounts = dict(total_fee=10000, med_ins_gov_fee=8000, med_ins_self_fee=2000, **insurance)
        else:  # CASH_ONLY: no insurance amounts, the cash is an addition
            amounts = dict(total_fee=3000, wechat_pay_cash_fee=3000, prepay_id=prepay_id,
                           cash_add_detail=(m.CashAdd(3000, "OTHER_MEDICAL_EXPENSES"),))
        return replace(m.MedInsOrderRequest(mix_pay_type=kind, **common, **amounts), **changes)


@pytest.fixture(params=IMPLEMENTATIONS)
async def stage(request: pytest.FixtureRequest, db: Database, clock: FixedClock, keys: Keys) -> AsyncIterator[Stage]:  # noqa: F811
    sandbox = SandboxWeChatPay(db, clock, keys.config, keys.platform_keys, delivery_backoff_seconds=0.01)
    med_sandbox = SandboxWeChatMedInsPay(sandbox)
    receiver = Receiver()
    receiving = await LiveServer(receiver.app()).start()
    receiver.url = receiving.url
    served: LiveServer | None = None
    client: HttpWeChatPay | None = None
    if request.param == "sandbox_in_process":
        pay: c.WeChatPay = sandbox
        med: m.WeChatMedInsPay = med_sandbox
    else:
        served = await LiveServer(wechatpay_sandbox_app(lambda: sandbox, lambda: med_sandbox)).start()
        client = HttpWeChatPay(served.url, keys.config, timeout=5, clock=clock)
        pay = med = client
    receiver.pay, receiver.med = pay, med
    try:
        yield Stage(pay, med, med_sandbox, receiver, clock, keys)
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


# The three kinds of order ---------------------------------------------------------------------------
async def test_cash_and_insurance_order_pays_its_prepay_then_calls_back_and_queries_both_ways(stage: Stage) -> None:
    prepay_id = await stage.prepay("MI-MIX-1", 4200)
    created = await stage.med.create_med_ins_order(stage.request("CASH_AND_INSURANCE", "MI-MIX-1", prepay_id))
    assert (created.mix_pay_status, created.self_pay_status, created.med_ins_pay_status) == (
        "MIX_PAY_CREATED", "SELF_PAY_CREATED", "MED_INS_PAY_CREATED")
    assert len(created.mix_trade_no) == 30 and created.paid_time is None
    assert (created.total_fee, created.wechat_pay_cash_fee, created.prepay_id) == (20200, 4200, prepay_id)
    assert (created.appid, created.openid, created.attach) == (APPID, OPENID, "visit-42")
    assert await stage.med.query_med_ins_order(created.mix_trade_no) == created
    assert await stage.med.query_med_ins_order_by_out_trade_no("MI-MIX-1") == created

    paid = await stage.sandbox.pay_med_ins(created.mix_trade_no)

    assert (paid.mix_pay_status, paid.self_pay_status, paid.med_ins_pay_status) == (
        "MIX_PAY_SUCCESS", "SELF_PAY_SUCCESS", "MED_INS_PAY_SUCCESS")
    assert paid.paid_time == stage.clock.now().replace(microsecond=0) and paid.med_ins_fail_reason is None
    [payment] = stage.receiver.payments
    assert payment.transaction is not None and payment.transaction.out_trade_no == "MI-MIX-1"
    assert payment.transaction.amount_fen == 4200
    [callback] = stage.receiver.callbacks
    assert callback.event_type == "MEDICAL_INSURANCE.SUCCESS" and callback.order == paid
    assert await stage.med.query_med_ins_order(created.mix_trade_no) == paid
    assert (await stage.pay.query("MI-MIX-1")).trade_state == "SUCCESS"
    assert await rejected(stage.sandbox.pay_med_ins("MI-MIX-1")) == c.ORDERPAID


async def test_insurance_only_order_has_no_cash_part(stage: Stage) -> None:
    created = await stage.med.create_med_ins_order(stage.request("INSURANCE_ONLY", "MI-INS-1"))
    assert (created.self_pay_status, created.med_ins_pay_status) == ("NO_SELF_PAY", "MED_INS_PAY_CREATED")
    assert created.prepay_id is None and created.pay_order_id == "ORD440300202611230910000001"
    assert stage.med.med_ins_payment(created.mix_trade_no, None) == {"mixTradeNo": created.mix_trade_no}
    paid = await stage.sandbox.pay_med_ins("MI-INS-1")
    assert (paid.mix_pay_status, paid.self_pay_status, paid.med_ins_pay_status) == (
        "MIX_PAY_SUCCESS", "NO_SELF_PAY", "MED_INS_PAY_SUCCESS")
    assert stage.receiver.payments == [] and [n.order for n in stage.receiver.callbacks] == [paid]


async def test_cash_only_order_has_no_insurance_part(stage: Stage) -> None:
    prepay_id = await stage.prepay("MI-CASH-1", 3000)
    created = await stage.med.create_med_ins_order(stage.request("CASH_ONLY", "MI-CASH-1", prepay_id))
    assert (created.self_pay_status, created.med_ins_pay_status) == ("SELF_PAY_CREATED", "NO_MED_INS_PAY")
    assert created.pay_order_id is None and created.med_ins_gov_fee == 0
    await stage.sandbox.pay.pay(prepay_id)  # the patient paid the cash already: settling only confirms it
    paid = await stage.sandbox.pay_med_ins(created.mix_trade_no)
    assert (paid.mix_pay_status, paid.self_pay_status, paid.med_ins_pay_status) == (
        "MIX_PAY_SUCCESS", "SELF_PAY_SUCCESS", "NO_MED_INS_PAY")
    assert len(stage.receiver.payments) == 1 and len(stage.receiver.callbacks) == 1


async def test_the_mini_program_gets_the_mix_trade_no_and_the_prepays_pay_sign(stage: Stage) -> None:
    prepay_id = await stage.prepay("MI-SIGN-1", 4200)
    order = await stage.med.create_med_ins_order(stage.request("CASH_AND_INSURANCE", "MI-SIGN-1", prepay_id))
    params = stage.med.med_ins_payment(order.mix_trade_no, prepay_id)
    assert params["mixTradeNo"] == order.mix_trade_no and params["package"] == f"prepay_id={prepay_id}"
    assert params["signType"] == "RSA" and "appId" not in params
    message = f"{APPID}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n".encode()
    stage.keys.merchant.public_key().verify(
        base64.b64decode(params["paySign"]), message, padding.PKCS1v15(), hashes.SHA256()
    )


# What is refused ---------------------------------------------------------------------------------------
async def test_amounts_that_do_not_add_up_or_contradict_the_type_are_rule_limit(stage: Stage) -> None:
    prepay_id = await stage.prepay("MI-BAD-1", 4200)
    mixed = stage.request("CASH_AND_INSURANCE", "MI-BAD-1", prepay_id)
    bad = [
        replace(mixed, total_fee=20201),  # one fen more than its parts
        replace(mixed, med_ins_cash_fee=5001),  # own pay ≠ wechat_pay_cash_fee − additions + reductions
        replace(mixed, cash_reduce_detail=()),  # the deduction dropped: nothing adds up
        replace(mixed, med_ins_gov_fee=-1, total_fee=10199),
        replace(mixed, prepay_id=None),  # cash without its prepay
        replace(mixed, pay_auth_no=None),  # insurance without its authorization
        replace(stage.request("INSURANCE_ONLY", "MI-BAD-1"), med_ins_cash_fee=100, wechat_pay_cash_fee=100,
                total_fee=10100),  # insurance only, yet cash
        replace(stage.request("CASH_ONLY", "MI-BAD-1", prepay_id), pay_order_id="ORD1"),
        replace(stage.request("CASH_ONLY", "MI-BAD-1", prepay_id), geo_location="114.057868,22.543099"),
        replace(stage.request("CASH_ONLY", "MI-BAD-1", prepay_id), med_ins_gov_fee=1000, total_fee=4000),
        replace(mixed, med_ins_gov_fee=0, med_ins_self_fee=0, med_ins_other_fee=0, med_ins_cash_fee=0,
                total_fee=5200, cash_add_detail=(m.CashAdd(5200),)),  # "mixed" with no insurance at all
        replace(mixed, pay_for_relatives=True),  # relatives without the relative
    ]
    for request in bad:
        assert await rejected(stage.med.create_med_ins_order(request)) == m.RULE_LIMIT, request
    unknown = replace(mixed, mix_pay_type="UNKNOWN_MIX_PAY_TYPE")
    assert await rejected(stage.med.create_med_ins_order(unknown)) == c.PARAM_ERROR
    assert await rejected(stage.med.query_med_ins_order_by_out_trade_no("MI-BAD-1")) == c.ORDER_NOT_EXIST
    assert await rejected(stage.med.query_med_ins_order("202611230910000000000000000000")) == c.ORDER_NOT_EXIST


async def test_the_same_request_again_is_the_same_order_and_other_content_already_exists(stage: Stage) -> None:
    request = stage.request("INSURANCE_ONLY", "MI-AGAIN-1")
    first = await stage.med.create_med_ins_order(request)
    assert await stage.med.create_med_ins_order(request) == first
    others = [
        replace(request, med_ins_gov_fee=7000, med_ins_self_fee=3000),  # consistent, but other amounts
        replace(request, payer=m.Person.of("李四", "110101199003074477")),
        replace(request, pay_order_id="ORD440300202611230910000002"),
    ]
    for other in others:
        assert await rejected(stage.med.create_med_ins_order(other)) == m.ALREADY_EXISTS
    at_once = await asyncio.gather(*(stage.med.create_med_ins_order(stage.request("INSURANCE_ONLY", "MI-RACE-1"))
                                     for _ in range(4)))
    assert len({o.mix_trade_no for o in at_once}) == 1


async def test_the_cash_part_must_be_the_orders_own_payable_prepay(stage: Stage) -> None:
    other_amount = await stage.prepay("MI-PRE-1", 4300)
    assert await rejected(stage.med.create_med_ins_order(
        stage.request("CASH_AND_INSURANCE", "MI-PRE-1", other_amount))) == c.INVALID_REQUEST
    other_order = await stage.prepay("MI-PRE-OTHER", 4200)
    assert await rejected(stage.med.create_med_ins_order(
        stage.request("CASH_AND_INSURANCE", "MI-PRE-2", other_order))) == c.INVALID_REQUEST
    assert await rejected(stage.med.create_med_ins_order(
        stage.request("CASH_AND_INSURANCE", "MI-PRE-3", "wx-no-such-prepay"))) == c.INVALID_REQUEST
    closed = await stage.prepay("MI-PRE-4", 4200)
    await stage.pay.close("MI-PRE-4")
    assert await rejected(stage.med.create_med_ins_order(
        stage.request("CASH_AND_INSURANCE", "MI-PRE-4", closed))) == c.ORDER_CLOSED

    late = await stage.prepay("MI-PRE-5", 4200)
    order = await stage.med.create_med_ins_order(stage.request("CASH_AND_INSURANCE", "MI-PRE-5", late))
    stage.clock.advance(minutes=16)  # the prepay expires before the patient confirms
    assert await rejected(stage.sandbox.pay_med_ins(order.mix_trade_no)) == c.ORDER_CLOSED
    failed = await stage.med.query_med_ins_order(order.mix_trade_no)
    assert (failed.mix_pay_status, failed.self_pay_status, failed.med_ins_pay_status) == (
        "MIX_PAY_FAIL", "SELF_PAY_FAIL", "MED_INS_PAY_FAIL")
    assert failed.med_ins_fail_reason and failed.paid_time is None
    assert stage.receiver.callbacks == []


async def test_paying_twice_at_once_pays_once_and_a_callback_can_come_again(stage: Stage) -> None:
    prepay_id = await stage.prepay("MI-TWICE-1", 4200)
    order = await stage.med.create_med_ins_order(stage.request("CASH_AND_INSURANCE", "MI-TWICE-1", prepay_id))
    results = await asyncio.gather(
        stage.sandbox.pay_med_ins(order.mix_trade_no, deliver=False),
        stage.sandbox.pay_med_ins(order.mix_trade_no, deliver=False),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["MedInsOrder", "SourceRejected"]
    [sent] = await stage.sandbox.pay.notifications(order.mix_trade_no)
    assert sent.event_type == "MEDICAL_INSURANCE.SUCCESS" and stage.receiver.callbacks == []
    assert await stage.sandbox.pay.deliver(sent.notify_id, copies=2)
    first, again = stage.receiver.callbacks
    assert first == again and first.id == sent.notify_id
    assert first.order == await stage.med.query_med_ins_order(order.mix_trade_no)


# Refunds: cash through the refund API, the insurance part told ---------------------------------------
async def test_refund_cash_by_the_refund_api_and_tell_the_insurance_part(stage: Stage) -> None:
    prepay_id = await stage.prepay("MI-RF-1", 4200)
    order = await stage.med.create_med_ins_order(stage.request("CASH_AND_INSURANCE", "MI-RF-1", prepay_id))
    told = m.MedInsRefund("RF-MI-1", 15000, 10000, 4500, 500, stage.clock.now())
    assert await rejected(stage.med.notify_med_ins_refund(order.mix_trade_no, told)) == c.INVALID_REQUEST  # unpaid
    await stage.sandbox.pay_med_ins(order.mix_trade_no)
    assert await rejected(stage.med.notify_med_ins_refund(order.mix_trade_no, told)) == c.INVALID_REQUEST  # no cash refund
    await stage.pay.refund("MI-RF-1", "RF-MI-1", 4200, 4200, "患者退费", "")
    assert await rejected(stage.med.notify_med_ins_refund(order.mix_trade_no, replace(told, med_refund_total_fee=14999))
                          ) == m.RULE_LIMIT
    assert await rejected(stage.med.notify_med_ins_refund(
        order.mix_trade_no, replace(told, med_refund_gov_fee=10001, med_refund_total_fee=15001))) == m.RULE_LIMIT

    await stage.med.notify_med_ins_refund(order.mix_trade_no, told)
    await stage.med.notify_med_ins_refund(order.mix_trade_no, told)  # told again: the same refund
    assert await rejected(stage.med.notify_med_ins_refund(
        order.mix_trade_no, replace(told, med_refund_gov_fee=9000, med_refund_total_fee=14000))) == m.ALREADY_EXISTS
    refunded = await stage.med.query_med_ins_order_by_out_trade_no("MI-RF-1")
    assert (refunded.mix_pay_status, refunded.self_pay_status, refunded.med_ins_pay_status) == (
        "MIX_PAY_REFUND", "SELF_PAY_REFUND", "MED_INS_PAY_REFUND")
    assert await rejected(stage.med.notify_med_ins_refund("202611230910000000000000000000", told)) == c.ORDER_NOT_EXIST


async def test_a_partial_insurance_refund_leaves_the_order_paid(stage: Stage) -> None:
    order = await stage.med.create_med_ins_order(stage.request("INSURANCE_ONLY", "MI-RF-2"))
    await stage.sandbox.pay_med_ins(order.mix_trade_no)
    await stage.med.notify_med_ins_refund(order.mix_trade_no, m.MedInsRefund("RF-MI-2", 3000, 3000, 0, 0,
                                                                             stage.clock.now()))
    assert (await stage.med.query_med_ins_order(order.mix_trade_no)).mix_pay_status == "MIX_PAY_SUCCESS"
    await stage.med.notify_med_ins_refund(order.mix_trade_no, m.MedInsRefund("RF-MI-3", 7000, 5000, 2000, 0,
                                                                             stage.clock.now()))
    done = await stage.med.query_med_ins_order(order.mix_trade_no)
    assert (done.mix_pay_status, done.med_ins_pay_status) == ("MIX_PAY_REFUND", "MED_INS_PAY_REFUND")


# Callbacks made here from the spec, then forged -------------------------------------------------------
ORDER_PLAIN = {
    "mix_trade_no": "202611230910000000000000000042", "mix_pay_status": "MIX_PAY_SUCCESS",
    "self_pay_status": "SELF_PAY_SUCCESS", "med_ins_pay_status": "MED_INS_PAY_SUCCESS",
    "paid_time": "2026-11-23T09:09:30+08:00", "mix_pay_type": "CASH_AND_INSURANCE", "order_type": "DIAG_PAY",
    "appid": APPID, "openid": OPENID, "pay_for_relatives": False, "out_trade_no": "MI-SPEC-1",
    "serial_no": "1217752501201", "pay_order_id": "ORD1", "pay_auth_no": "AUTH1", "city_id": "440300",
    "total_fee": 20200, "med_ins_gov_fee": 10000, "med_ins_self_fee": 4500, "med_ins_other_fee": 500,
    "med_ins_cash_fee": 5000, "wechat_pay_cash_fee": 4200, "prepay_id": "wx23091000abc", "med_ins_test_env": False,
}


def make_callback(
    merchant_keys: Keys, plain: dict[str, Any], *, at: int, key: rsa.RSAPrivateKey | None = None, apiv3: bytes | None = None,
    event_type: str = "MEDICAL_INSURANCE.SUCCESS",
) -> tuple[dict[str, str], bytes]:
    nonce = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
    sealed = AESGCM(apiv3 or merchant_keys.apiv3).encrypt(nonce.encode(), json.dumps(plain).encode(), b"")
    body = json.dumps({
        "id": "EV-MI-TEST-1", "create_time": "2026-11-23T09:10:00+08:00", "resource_type": "encrypt-resource",
        "event_type": event_type, "summary": "医保混合收款成功",
        "resource": {"algorithm": "AEAD_AES_256_GCM", "ciphertext": base64.b64encode(sealed).decode(),
                     "associated_data": "", "nonce": nonce},
    }).encode()
    header_nonce = secrets.token_hex(16)
    signature = (key or merchant_keys.platform).sign(f"{at}\n{header_nonce}\n".encode() + body + b"\n", padding.PKCS1v15(),
                                            hashes.SHA256())
    return {
        "Wechatpay-Timestamp": str(at), "Wechatpay-Nonce": header_nonce, "Wechatpay-Serial": PUB_KEY_ID,
        "Wechatpay-Signature": base64.b64encode(signature).decode(),
    }, body


async def test_a_callback_made_from_the_spec_is_accepted_and_forged_ones_are_refused(stage: Stage) -> None:
    now = int(stage.clock.now().timestamp())
    note = stage.med.parse_med_ins_notification(*make_callback(stage.keys, ORDER_PLAIN, at=now))
    assert note.order.mix_trade_no == ORDER_PLAIN["mix_trade_no"] and note.order.wechat_pay_cash_fee == 4200
    assert note.order.paid_time is not None and note.order.paid_time.tzinfo is not None

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    headers, body = make_callback(stage.keys, ORDER_PLAIN, at=now)
    forged = [
        make_callback(stage.keys, ORDER_PLAIN, at=now, key=stranger),
        make_callback(stage.keys, ORDER_PLAIN, at=now - 301),
        make_callback(stage.keys, ORDER_PLAIN, at=now, apiv3=os.urandom(32)),
        make_callback(stage.keys, ORDER_PLAIN, at=now, event_type="TRANSACTION.SUCCESS"),
        make_callback(stage.keys, {**ORDER_PLAIN, "appid": "wx0000000000000000"}, at=now),
        (headers, body.replace(b"EV-MI-TEST-1", b"EV-MI-TEST-2")),
        ({k: v for k, v in headers.items() if k != "Wechatpay-Signature"}, body),
    ]
    for h, b in forged:
        with pytest.raises(SourceRejected) as caught:
            stage.med.parse_med_ins_notification(h, b)
        assert caught.value.code == c.SIGN_ERROR

    async with httpx.AsyncClient() as http:
        response = await http.post(stage.receiver.url + "/notify/med-ins", content=body,
                                   headers=make_callback(stage.keys, ORDER_PLAIN, at=now, key=stranger)[0])
    assert response.status_code == 401 and stage.receiver.refused == [c.SIGN_ERROR]


# The payer's identity ------------------------------------------------------------------------------------
def test_the_id_digest_is_the_documented_one_and_never_shown() -> None:
    assert m.id_digest("44030019000101123x") == "09eb26e839ff3a2e3980352ae45ef09e"
    assert m.id_digest("440300900101123") == m.id_digest("440300199001011238")  # 15 digits widened to 18
    assert "张三" not in repr(PAYER) and PAYER.id_digest not in repr(PAYER)
    request = m.MedInsOrderRequest("INSURANCE_ONLY", "REG_PAY", OPENID, PAYER, "X", "S", "440300", "医院", "H1", 0, "u")
    assert "张三" not in repr(request) and PAYER.id_digest not in repr(request)


async def test_served_create_needs_the_payer_encrypted_under_the_named_key(
    db: Database, clock: FixedClock, keys: Keys  # noqa: F811
) -> None:
    sandbox = SandboxWeChatPay(db, clock, keys.config, keys.platform_keys)
    live = await LiveServer(wechatpay_sandbox_app(lambda: sandbox, lambda: SandboxWeChatMedInsPay(sandbox))).start()
    try:
        request = m.MedInsOrderRequest(
            "INSURANCE_ONLY", "REG_PAY", OPENID, PAYER, "MI-WIRE-1", "1217752501201", "440300", "医院", "H1",
            10000, "https://bff.example/notify/med-ins", med_ins_gov_fee=10000, pay_order_id="ORD1",
            pay_auth_no="AUTH1", med_ins_order_create_time=clock.now(),
        )
        payload = medins_wire.order_request_json(request, APPID, keys.config.wechatpay_public_key_pem)
        assert payload["payer"]["name"] != "张三" and payload["payer"]["card_type"] == "ID_CARD"
        clear = {**payload, "payer": {"name": "张三", "id_digest": PAYER.id_digest, "card_type": "ID_CARD"}}
        at, path = int(clock.now().timestamp()), "/v3/med-ins/orders"
        async with httpx.AsyncClient(base_url=live.url) as http:
            async def post(content: dict[str, Any], serial: str | None) -> httpx.Response:
                body = json.dumps(content, ensure_ascii=False)
                headers = {"Authorization": spec_authorization(keys.merchant, "POST", path, body, at),
                           "Content-Type": "application/json"}
                if serial is not None:
                    headers["Wechatpay-Serial"] = serial
                return await http.post(path, content=body.encode(), headers=headers)

            for content, serial in ((clear, PUB_KEY_ID), (payload, None), (payload, "PUB_KEY_ID_OTHER")):
                response = await post(content, serial)
                assert response.status_code == 400 and response.json()["code"] == c.PARAM_ERROR
            response = await post(payload, PUB_KEY_ID)
            assert response.status_code == 200 and response.json()["mix_pay_status"] == "MIX_PAY_CREATED"
            assert "payer" not in response.json() and response.json()["out_trade_no"] == "MI-WIRE-1"
    finally:
        await live.stop()


async def test_a_create_is_sent_once_and_queries_are_retried(fake: Fake, keys: Keys, clock: FixedClock) -> None:  # noqa: F811
    fake.mode = "500"
    pay = client(fake, keys, clock, timeout=5, retries=2)
    try:
        request = m.MedInsOrderRequest(
            "INSURANCE_ONLY", "REG_PAY", OPENID, PAYER, "MI-ONCE-1", "S1", "440300", "医院", "H1", 100,
            "https://bff.example/n", med_ins_gov_fee=100, pay_order_id="ORD1", pay_auth_no="AUTH1",
            med_ins_order_create_time=clock.now(),
        )
        with pytest.raises(SourceUnavailable):
            await pay.create_med_ins_order(request)
        assert fake.hits == 1  # the outcome is unknown: query by out_trade_no, never blindly send again
        with pytest.raises(SourceUnavailable):
            await pay.query_med_ins_order_by_out_trade_no("MI-ONCE-1")
        assert fake.hits == 4
    finally:
        await pay.aclose()
