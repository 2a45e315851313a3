"""The payment channels' notifications (支付结果通知): verified with the channel's key, kept once by
their id, then the order is confirmed by asking the channel itself (the query is the truth).

WeChat Pay expects 200/204 with an empty body for "received", anything else makes it send again;
Alipay expects the text ``success``. A duplicate is answered as received and changes nothing;
a notification that fails verification is refused (and so sent again, and refused again).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import col
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from datasources.errors import SourceRejected
from datasources.store.models import PaymentNotice
from resolvers.deps import Deps
from resolvers.payments import orders, refunds

log = logging.getLogger(__name__)
Endpoint = Callable[[Request], Awaitable[Response]]


async def _once(
    deps: Deps, channel: str, notice_id: str, order_no: str, event: str, act: Callable[[], Awaitable[object]]
) -> None:
    """Acts on a notification the first time it arrives. If acting fails, the record goes too, so
    the channel's next delivery (it sends again after an error) is acted on."""
    notice = PaymentNotice(
        channel=channel, notice_id=notice_id[:64], order_no=order_no[:64], event=event[:32],
        received_at=deps.clock.now(),
    )
    try:
        async with deps.db.writing() as s:
            s.add(notice)
    except IntegrityError:
        return
    try:
        await act()
    except BaseException:
        async with deps.db.writing() as s:
            await s.execute(delete(PaymentNotice).where(col(PaymentNotice.id) == notice.id))
        raise


def _wechat_endpoint(
    get_deps: Callable[[], Deps], which: str, handle: Callable[[Deps, Any, Any], Awaitable[None]]
) -> Endpoint:
    """A WeChat Pay callback: signature and freshness verified, resource decrypted (by the source's
    ``parse`` for ``which``: the plain API or the medical-insurance one), then ``handle``d; 204 when
    received, 401 (so WeChat Pay sends it again, and it is refused again) when not genuine."""

    async def endpoint(request: Request) -> Response:
        deps = get_deps()
        api = deps.sources.wechatpay if which == "WECHAT_PAY" else deps.sources.wechat_med_ins
        if api is None or deps.payments is None:
            return JSONResponse({"code": "FAIL", "message": f"{which} is not enabled"}, status_code=404)
        parse = api.parse_notification if which == "WECHAT_PAY" else api.parse_med_ins_notification  # type: ignore[union-attr]
        try:
            notice = parse({k.lower(): v for k, v in request.headers.items()}, await request.body())
        except SourceRejected as exc:
            log.warning("%s notification refused: %s", which, exc.code)
            return JSONResponse({"code": "FAIL", "message": "signature verification failed"}, status_code=401)
        await handle(deps, deps.payments, notice)
        return Response(status_code=204)

    return endpoint


async def _wechat_paid_or_refunded(deps: Deps, payments: orders.Payments, notice: Any) -> None:
    if notice.transaction is not None:
        order_no = notice.transaction.out_trade_no
        await _once(deps, "WECHAT_PAY", notice.id, order_no, notice.event_type,
                    lambda: _confirm(deps, payments, order_no))
    elif notice.refund is not None:
        refund_no = notice.refund.out_refund_no
        await _once(deps, "WECHAT_PAY", notice.id, notice.refund.out_trade_no, notice.event_type,
                    lambda: _refunded(deps, payments, refund_no))


async def _wechat_med_ins_paid(deps: Deps, payments: orders.Payments, notice: Any) -> None:
    """MEDICAL_INSURANCE.SUCCESS: both parts of a medical-insurance order were paid."""
    order_no = notice.order.out_trade_no
    await _once(deps, "WECHAT_MED_INS", notice.id, order_no, notice.event_type,
                lambda: _confirm(deps, payments, order_no))


def wechatpay_notified(get_deps: Callable[[], Deps]) -> Endpoint:
    return _wechat_endpoint(get_deps, "WECHAT_PAY", _wechat_paid_or_refunded)


def wechat_med_ins_notified(get_deps: Callable[[], Deps]) -> Endpoint:
    return _wechat_endpoint(get_deps, "WECHAT_MED_INS", _wechat_med_ins_paid)


def alipay_notified(get_deps: Callable[[], Deps]) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        deps = get_deps()
        api, payments = deps.sources.alipay, deps.payments
        if api is None or payments is None:
            return PlainTextResponse("failure", status_code=404)
        try:  # application/x-www-form-urlencoded, UTF-8 (the charset the trade was created with)
            form = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            return PlainTextResponse("failure", status_code=400)
        try:
            notice = api.parse_notification(form)
        except SourceRejected as exc:
            log.warning("Alipay notification refused: %s", exc.code)
            return PlainTextResponse("failure", status_code=400)
        if not notice.out_biz_no:  # a refund's notify changes nothing: Alipay refunds are final when answered
            await _once(deps, "ALIPAY", notice.notify_id, notice.out_trade_no, notice.trade_status,
                        lambda: _confirm(deps, payments, notice.out_trade_no))
        return PlainTextResponse("success")

    return endpoint


async def _confirm(deps: Deps, payments: orders.Payments, order_no: str) -> None:
    """A notification for an order this BFF never made is answered as received and logged: telling
    the channel to send it again would not make the order exist."""
    if await orders.load(deps, order_no) is None:
        log.warning("payment notification for unknown order %s", order_no)
        return
    await orders.confirm(deps, payments, order_no)


async def _refunded(deps: Deps, payments: orders.Payments, refund_no: str) -> None:
    if await refunds.load(deps, refund_no) is not None:
        await refunds.execute(deps, payments, refund_no)
