"""WeChat Pay Native (the QR code a kiosk shows, ``POST /v3/pay/transactions/native``), one suite run
against the sandbox in-process and against ``HttpWeChatPay`` over real HTTP to the served sandbox,
with the stage of the JSAPI suite: notifications travel as real HTTP POSTs to a receiver that verifies
and decrypts them with the implementation under test.
"""

from __future__ import annotations

from datetime import timedelta

from datasources.clock import local_date
from datasources.wechatpay import contract as c
from datasources.wechatpay import wire
from datasources.wechatpay.sandbox import SANDBOX_PAYER_OPENID
from tests.datasources import test_wechatpay_contract as jsapi
from tests.datasources.test_wechatpay_contract import APPID, MCHID, OPENID, Stage, rejected

keys, stage = jsapi.keys, jsapi.stage  # the JSAPI suite's fixtures: both implementations, a live receiver

KIOSK_PAYER = "oUpF8uKioskScanner0000000042"


async def native(stage: Stage, out_trade_no: str, amount_fen: int = 1250, description: str = "门诊缴费-自助机",
                 notify_url: str | None = None, minutes: int = 5) -> str:
    expires = stage.clock.now() + timedelta(minutes=minutes)
    prepay = await stage.pay.prepay_native(
        out_trade_no, description, amount_fen, notify_url or stage.notify_url, expires
    )
    return prepay.code_url


async def test_native_prepay_gives_a_code_and_an_unpaid_order_without_payer(stage: Stage) -> None:
    code_url = await native(stage, "KIOSK-1", 1250)
    assert code_url.startswith("weixin://wxpay/bizpayurl?pr=") and len(code_url) > len(wire.NATIVE_CODE_URL_PREFIX)
    order = await stage.pay.query("KIOSK-1")
    assert (order.trade_state, order.trade_type, order.amount_fen) == ("NOTPAY", "NATIVE", 1250)
    assert order.payer_openid is None and order.transaction_id is None and order.success_time is None


async def test_native_prepay_repeated_is_the_same_code_and_other_content_is_refused(stage: Stage) -> None:
    code_url = await native(stage, "KIOSK-2", 1250)
    assert await native(stage, "KIOSK-2", 1250) == code_url
    assert await rejected(native(stage, "KIOSK-2", 1300)) == c.OUT_TRADE_NO_USED
    assert await rejected(native(stage, "KIOSK-2", 1250, description="别的")) == c.OUT_TRADE_NO_USED
    other_url = stage.receiver.url + "/notify/other"
    assert await rejected(native(stage, "KIOSK-2", 1250, notify_url=other_url)) == c.OUT_TRADE_NO_USED
    assert await rejected(native(stage, "KIOSK-3", 0)) == c.PARAM_ERROR
    assert await rejected(native(stage, "KIOSK-4", -1)) == c.PARAM_ERROR
    assert await rejected(native(stage, "KIOSK-5", 100, minutes=-1)) == c.PARAM_ERROR
    # JSAPI and Native never share an out_trade_no, whichever came first
    await stage.order("KIOSK-JSAPI", 1250, "门诊缴费-自助机")
    assert await rejected(native(stage, "KIOSK-JSAPI", 1250)) == c.OUT_TRADE_NO_USED
    assert await rejected(stage.order("KIOSK-2", 1250, "门诊缴费-自助机")) == c.OUT_TRADE_NO_USED


async def test_scanning_the_code_pays_and_the_notification_arrives_over_http(stage: Stage) -> None:
    code_url = await native(stage, "KIOSK-PAY", 4321)

    paid = await stage.sandbox.pay_code(code_url, KIOSK_PAYER)

    assert len(stage.receiver.received) == 1 and stage.receiver.refused == []
    note = stage.receiver.received[0]
    assert note.event_type == "TRANSACTION.SUCCESS" and note.transaction == paid
    assert paid.trade_type == "NATIVE" and paid.payer_openid == KIOSK_PAYER
    queried = await stage.pay.query("KIOSK-PAY")
    assert queried == paid
    assert (queried.trade_state, queried.amount_fen, queried.payer_total_fen) == ("SUCCESS", 4321, 4321)
    assert queried.transaction_id and queried.transaction_id.startswith("42")
    assert (queried.mchid, queried.appid) == (MCHID, APPID)
    assert queried.success_time == stage.clock.now().replace(microsecond=0)
    assert await rejected(stage.sandbox.pay_code(code_url)) == c.ORDERPAID
    assert await rejected(native(stage, "KIOSK-PAY", 4321)) == c.ORDERPAID
    assert await rejected(stage.pay.close("KIOSK-PAY")) == c.ORDERPAID


async def test_a_payer_not_named_is_the_sandbox_payer_and_unknown_codes_are_refused(stage: Stage) -> None:
    paid = await stage.sandbox.pay_code(await native(stage, "KIOSK-ANON"))
    assert paid.payer_openid == SANDBOX_PAYER_OPENID
    assert (await stage.pay.query("KIOSK-ANON")).payer_openid == SANDBOX_PAYER_OPENID
    assert await rejected(stage.sandbox.pay_code("weixin://wxpay/bizpayurl?pr=nosuchcode")) == c.ORDER_NOT_EXIST
    assert await rejected(stage.sandbox.pay_code("https://example.invalid/qr")) == c.ORDER_NOT_EXIST


async def test_a_jsapi_order_is_paid_by_its_own_payer_only(stage: Stage) -> None:
    prepay_id = await stage.order("KIOSK-OWN")
    assert await rejected(stage.sandbox.pay(prepay_id, payer_openid=KIOSK_PAYER)) == c.INVALID_REQUEST
    assert (await stage.sandbox.pay(prepay_id, payer_openid=OPENID)).payer_openid == OPENID


async def test_close_before_scanning_then_the_code_cannot_be_paid(stage: Stage) -> None:
    code_url = await native(stage, "KIOSK-CLOSE")
    await stage.pay.close("KIOSK-CLOSE")
    closed = await stage.pay.query("KIOSK-CLOSE")
    assert (closed.trade_state, closed.trade_type, closed.payer_openid) == ("CLOSED", "NATIVE", None)
    assert await rejected(stage.sandbox.pay_code(code_url, KIOSK_PAYER)) == c.ORDER_CLOSED
    assert await rejected(native(stage, "KIOSK-CLOSE")) == c.ORDER_CLOSED
    assert stage.receiver.hits == 0


async def test_an_expired_code_cannot_be_paid_and_the_order_closes(stage: Stage) -> None:
    code_url = await native(stage, "KIOSK-LATE", minutes=2)
    stage.clock.advance(minutes=3)
    assert await rejected(stage.sandbox.pay_code(code_url, KIOSK_PAYER)) == c.ORDER_CLOSED
    late = await stage.pay.query("KIOSK-LATE")
    assert (late.trade_state, late.payer_openid) == ("CLOSED", None)
    assert stage.receiver.hits == 0


async def test_a_native_order_refunds_and_is_in_the_bill_as_native(stage: Stage) -> None:
    day = local_date(stage.clock.now())
    await stage.sandbox.pay_code(await native(stage, "KIOSK-RF", 5000), KIOSK_PAYER)
    refund_url = stage.receiver.url + "/notify/refund"
    refund = await stage.pay.refund("KIOSK-RF", "KIOSK-RF-1", 1500, 5000, "患者取消", refund_url)
    assert (refund.status, refund.refund_fen, refund.total_fen) == ("PROCESSING", 1500, 5000)
    assert await rejected(stage.pay.refund("KIOSK-RF", "KIOSK-RF-2", 3501, 5000, "", refund_url)) == c.NOT_ENOUGH
    stage.receiver.received.clear()
    await stage.sandbox.settle_refund("KIOSK-RF-1")
    [note] = stage.receiver.received
    assert note.event_type == "REFUND.SUCCESS" and note.refund is not None and note.refund.refund_fen == 1500
    assert (await stage.pay.query_refund("KIOSK-RF-1")).status == "SUCCESS"
    assert (await stage.pay.query("KIOSK-RF")).trade_state == "REFUND"

    stage.clock.advance(days=1)
    lines = await stage.pay.trade_bill(day)
    assert [(ln.out_trade_no, ln.trade_type, ln.trade_state, ln.openid, ln.settlement_total_fen, ln.refund_fen)
            for ln in lines] == [
        ("KIOSK-RF", "NATIVE", "SUCCESS", KIOSK_PAYER, 5000, 0),
        ("KIOSK-RF", "NATIVE", "REFUND", KIOSK_PAYER, 0, 1500),
    ]
    text = await stage.sandbox.bill_text(day)
    assert ",`KIOSK-RF,`" + KIOSK_PAYER + ",`NATIVE,`SUCCESS," in text
