"""The payment page of an order (its link, and the QR code of the link): what a relative or a kiosk
screen opens to pay a deposit or a bill for the patient.

The page shows what is paid and how much, never who for (a link travels in chats). Opened inside
WeChat or Alipay, a real deployment hands over to that channel's cashier (JSAPI / my.tradePay); the
sandbox page instead has a "pay" button that plays the payer, so the whole flow, notifications
included, can be walked through in development.
"""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from datasources.clock import SHANGHAI
from datasources.errors import SourceRejected
from resolvers.deps import Deps
from resolvers.payment_link import payment_qr_png
from resolvers.payments import orders, statements
from resolvers.settlement_document import SealInvalid

Endpoint = Callable[[Request], Awaitable[Response]]
ORDER_NO = re.compile(r"^P\d{24}$")
STATUS_TEXT = {
    orders.CREATED: "待支付", orders.PAYING: "待支付", orders.PAID: "已支付，医院入账中", orders.SETTLED: "已支付",
    orders.CLOSED: "已关闭", orders.REFUNDING: "退款中", orders.REFUNDED: "已退款",
}


async def _order(deps: Deps, request: Request) -> orders.Order | None:
    order_no = request.path_params["order_no"]
    if not ORDER_NO.match(order_no):
        return None
    return await orders.load(deps, order_no)


def payment_page(get_deps: Callable[[], Deps], *, sandbox: bool) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        deps = get_deps()
        order = await _order(deps, request)
        if order is None:
            return HTMLResponse("<!doctype html><title>未找到</title><p>没有这笔订单。</p>", status_code=404)
        paying = order.status in orders.OPEN
        button = (
            f'<form method="post" action="{orders.LINK_PREFIX}{order.order_no}/sandbox-pay">'
            '<button>模拟支付（沙箱）</button></form>'
            if sandbox and paying else ""
        )
        body = (
            "<!doctype html><meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
            f"<title>支付</title><h1>{html.escape(order.description)}</h1>"
            f"<p>金额：<strong>¥{order.total_fen / 100:.2f}</strong></p>"
            f"<p>状态：{STATUS_TEXT.get(order.status, order.status)}</p>"
            + (f"<p>请在 {order.expires_at.astimezone(SHANGHAI):%H:%M} 前完成支付。</p>" if paying else "")
            + f"<p>订单号：{order.order_no}</p>{button}"
        )
        return HTMLResponse(body, headers={"Cache-Control": "no-store"})

    return endpoint


def payment_qr(get_deps: Callable[[], Deps]) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        deps = get_deps()
        order = await _order(deps, request)
        if order is None or deps.payments is None or not deps.payments.public_base_url:
            return Response(status_code=404)
        png = payment_qr_png(deps.payments.link(order.order_no))
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    return endpoint


def sandbox_pay(get_deps: Callable[[], Deps]) -> Endpoint:
    """Development only: the payer pays in the channel's sandbox, which then notifies the BFF."""

    async def endpoint(request: Request) -> Response:
        deps = get_deps()
        order = await _order(deps, request)
        if order is None:
            return Response(status_code=404)
        source = deps.sources.wechatpay if order.channel == "WECHAT_PAY" else deps.sources.alipay
        pay = getattr(source, "pay", None)
        if pay is None:
            return Response(status_code=404)
        try:
            await pay(order.order_no)
        except SourceRejected:
            pass  # closed or already paid: the page says so
        return RedirectResponse(f"{orders.LINK_PREFIX}{order.order_no}", status_code=303)

    return endpoint


MAX_STATEMENT_BYTES = 5 * 1024 * 1024


def statement_verification(get_deps: Callable[[], Deps]) -> Endpoint:
    """POST a settlement statement PDF: is the e-seal the hospital's, and the content unchanged?
    Public: whoever holds a statement (an insurer, a court, the patient) may check it."""

    async def endpoint(request: Request) -> Response:
        body = await request.body()
        if not body or len(body) > MAX_STATEMENT_BYTES:
            return JSONResponse({"valid": False, "reason": "NOT_A_STATEMENT",
                                 "message": "Send the PDF itself as the body (at most 5 MB)."}, status_code=400)
        try:
            checked = statements.verify(get_deps(), body)
        except SealInvalid as exc:
            return JSONResponse({"valid": False, "reason": exc.reason, "message": str(exc)}, status_code=422)
        s = checked.statement
        return JSONResponse({
            "valid": True, "statementNo": s.statement_no, "institutionCode": s.institution_code,
            "hospitalName": s.hospital_name, "settlementId": s.setl_id, "totalFen": s.total_fen,
            "sealedAt": checked.sealed_at.isoformat(), "sealCertificateSerial": checked.signer.serial,
            "contentSm3": checked.content_sm3,
        })

    return endpoint
