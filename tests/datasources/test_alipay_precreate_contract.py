"""Alipay precreate (当面付 扫码: the QR code a kiosk shows, ``alipay.trade.precreate``), one suite run
against the sandbox in-process and against ``HttpAlipay`` over real HTTP to the served gateway, with
the stage of the create_trade suite: async notifies travel as real signed form POSTs to a receiver
that verifies them with the implementation under test.
"""

from __future__ import annotations

from datetime import timedelta

import httpx

from datasources.alipay import contract as c
from datasources.alipay import wire
from datasources.alipay.http import HttpAlipay
from datasources.alipay.sandbox import SANDBOX_BUYER_ID
from datasources.clock import local_date
from tests.datasources import test_alipay_contract as created
from tests.datasources.test_alipay_contract import APP_ID, BUYER, Stage, documented_content, reference_verify, rejected

keys, stage = created.keys, created.stage  # the create_trade suite's fixtures: both implementations, a receiver

SCANNER = "2088102177846880"


async def precreate(stage: Stage, out_trade_no: str, amount_fen: int = 1250, subject: str = "门诊缴费 自助机",
                    minutes: int = 5) -> c.PrecreatedTrade:
    return await stage.alipay.precreate_trade(
        out_trade_no=out_trade_no, subject=subject, amount_fen=amount_fen, notify_url=stage.notify_url,
        expires_at=stage.clock.now() + timedelta(minutes=minutes),
    )


async def test_precreate_gives_a_qr_code_and_a_waiting_trade_without_buyer(stage: Stage) -> None:
    trade = await precreate(stage, "KIOSK-1", 1250)
    assert trade.out_trade_no == "KIOSK-1" and trade.qr_code.startswith("https://qr.alipay.com/bax")
    waiting = await stage.alipay.query("KIOSK-1")
    assert (waiting.trade_status, waiting.total_fen, waiting.buyer_id, waiting.gmt_payment) == (
        c.WAIT_BUYER_PAY, 1250, "", None
    )


async def test_precreating_again_returns_the_same_code_and_other_terms_are_refused(stage: Stage) -> None:
    first = await precreate(stage, "KIOSK-2", 1250)
    assert await precreate(stage, "KIOSK-2", 1250) == first
    assert await rejected(precreate(stage, "KIOSK-2", 1251)) == c.CONTEXT_INCONSISTENT
    assert await rejected(precreate(stage, "KIOSK-2", 1250, subject="别的")) == c.CONTEXT_INCONSISTENT
    assert await rejected(precreate(stage, "KIOSK-3", 0)) == c.INVALID_PARAMETER
    # a mini-program trade and a QR code never share an out_trade_no, whichever came first
    await stage.create("KIOSK-JSAPI", 1250, subject="门诊缴费 自助机")
    assert await rejected(precreate(stage, "KIOSK-JSAPI", 1250)) == c.CONTEXT_INCONSISTENT
    assert await rejected(stage.create("KIOSK-2", 1250, subject="门诊缴费 自助机")) == c.CONTEXT_INCONSISTENT


async def test_scanning_the_code_pays_notifies_over_http_verified_and_query_shows_the_buyer(stage: Stage) -> None:
    trade = await precreate(stage, "KIOSK-PAY", 4321)

    await stage.sandbox.pay_code(trade.qr_code, SCANNER)

    [form] = stage.receiver.posts
    assert form["total_amount"] == "43.21" and form["buyer_id"] == SCANNER and form["sign_type"] == "RSA2"
    assert reference_verify(
        stage.keys.platform.public_key(), form["sign"], documented_content(form, ("sign", "sign_type"))
    )
    [note] = stage.receiver.verified
    assert (note.out_trade_no, note.trade_status, note.total_fen, note.buyer_id, note.app_id) == (
        "KIOSK-PAY", c.TRADE_SUCCESS, 4321, SCANNER, APP_ID
    )
    paid = await stage.alipay.query("KIOSK-PAY")
    assert paid == c.Trade("KIOSK-PAY", note.trade_no, c.TRADE_SUCCESS, 4321, SCANNER, note.gmt_payment)
    assert paid.gmt_payment == stage.clock.now().replace(microsecond=0)
    assert await rejected(stage.sandbox.pay_code(trade.qr_code)) == c.TRADE_HAS_SUCCESS
    assert await rejected(precreate(stage, "KIOSK-PAY", 4321)) == c.TRADE_HAS_SUCCESS
    assert await rejected(stage.alipay.close("KIOSK-PAY")) == c.TRADE_STATUS_ERROR


async def test_a_buyer_not_named_is_the_sandbox_buyer_and_unknown_codes_do_not_exist(stage: Stage) -> None:
    await stage.sandbox.pay_code((await precreate(stage, "KIOSK-ANON")).qr_code)
    assert (await stage.alipay.query("KIOSK-ANON")).buyer_id == SANDBOX_BUYER_ID
    assert await rejected(stage.sandbox.pay_code("https://qr.alipay.com/baxnosuchcode")) == c.TRADE_NOT_EXIST


async def test_a_created_trade_is_paid_by_its_own_buyer_only(stage: Stage) -> None:
    await stage.create("KIOSK-OWN")
    assert await rejected(stage.sandbox.pay("KIOSK-OWN", buyer_id=SCANNER)) == c.INVALID_PARAMETER
    await stage.sandbox.pay("KIOSK-OWN", buyer_id=BUYER)
    assert (await stage.alipay.query("KIOSK-OWN")).buyer_id == BUYER


async def test_close_before_scanning_then_the_code_cannot_be_paid(stage: Stage) -> None:
    trade = await precreate(stage, "KIOSK-CLOSE")
    await stage.alipay.close("KIOSK-CLOSE")
    closed = await stage.alipay.query("KIOSK-CLOSE")
    assert (closed.trade_status, closed.buyer_id) == (c.TRADE_CLOSED, "")
    assert await rejected(stage.sandbox.pay_code(trade.qr_code, SCANNER)) == c.TRADE_HAS_CLOSE
    assert await rejected(precreate(stage, "KIOSK-CLOSE")) == c.TRADE_HAS_CLOSE
    assert stage.receiver.posts == []


async def test_an_expired_code_closes_the_trade_and_cannot_be_paid(stage: Stage) -> None:
    trade = await precreate(stage, "KIOSK-LATE", minutes=2)
    stage.clock.advance(minutes=3)
    late = await stage.alipay.query("KIOSK-LATE")
    assert (late.trade_status, late.buyer_id) == (c.TRADE_CLOSED, "")
    assert await rejected(stage.sandbox.pay_code(trade.qr_code, SCANNER)) == c.TRADE_HAS_CLOSE
    assert stage.receiver.posts == []


async def test_a_paid_code_refunds_and_is_in_the_bill(stage: Stage) -> None:
    day = local_date(stage.clock.now())
    trade = await precreate(stage, "KIOSK-RF", 5000)
    await stage.sandbox.pay_code(trade.qr_code, SCANNER)
    part = await stage.alipay.refund(out_trade_no="KIOSK-RF", out_request_no="RF1", refund_fen=1500, reason="退费")
    assert (part.refund_fen, part.refunded_total_fen, part.fund_change) == (1500, 1500, True)
    over = stage.alipay.refund(out_trade_no="KIOSK-RF", out_request_no="RF2", refund_fen=3501, reason="")
    assert await rejected(over) == c.REFUND_AMT_NOT_EQUAL_TOTAL
    assert (await stage.alipay.query_refund(out_trade_no="KIOSK-RF", out_request_no="RF1") or part).refund_fen == 1500
    assert await stage.sandbox.deliver_pending() == 1  # the refund's notify
    refund_note = stage.receiver.verified[-1]
    assert (refund_note.refund_fen, refund_note.out_biz_no, refund_note.buyer_id) == (1500, "RF1", SCANNER)

    stage.clock.advance(days=1)
    lines = await stage.alipay.bill(day)
    assert [(ln.out_trade_no, ln.kind, ln.amount_fen) for ln in lines] == [
        ("KIOSK-RF", "交易", 5000), ("KIOSK-RF", "退款", -1500)
    ]


async def test_the_gateway_takes_timeout_express_and_the_admin_pays_by_code(stage: Stage) -> None:
    """What only the served gateway has: the relative expiry Alipay also accepts, and /sandbox/pay."""
    client = stage.alipay
    if not isinstance(client, HttpAlipay):
        return  # the in-process run has no gateway
    gateway = client.gateway_url
    params = client.signed_params(
        "alipay.trade.precreate",
        {"out_trade_no": "KIOSK-EXPRESS", "total_amount": "8.00", "subject": "自助机", "timeout_express": "2m"},
        stage.notify_url,
    )
    async with httpx.AsyncClient() as http:
        answer = (await http.post(gateway, data=params)).json()["alipay_trade_precreate_response"]
        assert answer["code"] == wire.SUCCESS and answer["qr_code"].startswith("https://qr.alipay.com/bax")
        admin = gateway.removesuffix("/gateway.do") + "/sandbox/pay"
        paid = await http.post(admin, data={"qr_code": answer["qr_code"], "buyer_id": SCANNER})
        assert paid.status_code == 200 and paid.json()["notify_id"]
    assert (await stage.alipay.query("KIOSK-EXPRESS")).buyer_id == SCANNER
    for bad in ("0m", "16d", "2w", "m", ""):
        assert await _refused_express(client, gateway, bad) == c.INVALID_PARAMETER


async def _refused_express(client: HttpAlipay, gateway: str, express: str) -> str:
    biz = {"out_trade_no": f"KIOSK-BAD-{express}", "total_amount": "1.00", "subject": "x"}
    if express:
        biz["timeout_express"] = express
    params = client.signed_params("alipay.trade.precreate", biz, "http://127.0.0.1/n")
    async with httpx.AsyncClient() as http:
        answer = (await http.post(gateway, data=params)).json()["alipay_trade_precreate_response"]
    return str(answer.get("sub_code"))
