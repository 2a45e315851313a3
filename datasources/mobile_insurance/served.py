"""The mobile insurance sandbox served as the platform: its authorization page and its signed envelope API.

``GET /mipay/auth`` shows the authorization page (a form asking the insured person's name and ID
number); submitting it redirects to the hospital's ``returnUrl`` with ``authCode`` and ``state``.
Each transaction is a POST of an envelope to its path (``wire.PATHS``). Every request is decrypted
and its signature checked with the hospital's key before anything happens; every reply, rejections
included, is signed with the platform's key.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from datasources.errors import SourceRejected
from datasources.mobile_insurance import contract as c
from datasources.mobile_insurance import transactions as t
from datasources.mobile_insurance import wire
from datasources.mobile_insurance.sandbox import SandboxMobileInsurance

log = logging.getLogger(__name__)

INTERNAL = "INTERNAL"

Handler = Callable[[SandboxMobileInsurance, dict[str, Any]], Awaitable[dict[str, Any]]]


async def _auth(sb: SandboxMobileInsurance, d: dict[str, Any]) -> dict[str, Any]:
    return t.authorization_data(await sb.authorization(t.text(d, "authCode")))


async def _upload(sb: SandboxMobileInsurance, d: dict[str, Any]) -> dict[str, Any]:
    return t.uploaded_data(await sb.upload_fees(t.upload_of(d)))


async def _order(sb: SandboxMobileInsurance, d: dict[str, Any]) -> dict[str, Any]:
    return t.order_data(await sb.place_order(pay_ord_id=t.text(d, "payOrdId"), pay_token=t.text(d, "payToken")))


async def _refund(sb: SandboxMobileInsurance, d: dict[str, Any]) -> dict[str, Any]:
    refund = await sb.refund(
        pay_ord_id=t.text(d, "payOrdId"),
        refund_sn=t.text(d, "appRefdSn"),
        reason=t.text(d, "expContent", optional=True),
    )
    return t.refund_data(refund)


async def _query(sb: SandboxMobileInsurance, d: dict[str, Any]) -> dict[str, Any]:
    return t.order_data(await sb.query(pay_ord_id=t.text(d, "payOrdId")))


async def _cancel(sb: SandboxMobileInsurance, d: dict[str, Any]) -> dict[str, Any]:
    order = await sb.cancel_upload(
        pay_ord_id=t.text(d, "payOrdId"), pay_token=t.text(d, "payToken"), reason=t.text(d, "expContent", optional=True)
    )
    return t.order_data(order)


HANDLERS: dict[str, Handler] = {
    "auth": _auth,
    "6201": _upload,
    "6202": _order,
    "6203": _refund,
    "6301": _query,
    "6401": _cancel,
}

_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>医保移动支付授权（沙箱）</title></head>
<body><h1>医保移动支付授权（沙箱）</h1><p>{error}</p>
<form method="post"><input type="hidden" name="returnUrl" value="{return_url}">
<input type="hidden" name="state" value="{state}">
<label>姓名 <input name="name" required></label> <label>身份证号 <input name="idNo" required></label>
<button type="submit">授权</button></form></body></html>"""


def mobile_insurance_sandbox_app(get_sandbox: Callable[[], SandboxMobileInsurance], platform: wire.Party) -> Starlette:
    """Serves ``get_sandbox()`` as the platform whose keys and app credentials ``platform`` holds."""

    def reply(data: dict[str, Any] | None, code: str = wire.OK, message: str = "success") -> JSONResponse:
        now = wire.timestamp(get_sandbox().clock.now())
        return JSONResponse(wire.seal(platform, data, now, code=code, message=message))

    def page(return_url: str, state: str, error: str = "", status: int = 200) -> HTMLResponse:
        return HTMLResponse(
            _PAGE.format(return_url=html.escape(return_url), state=html.escape(state), error=html.escape(error)),
            status_code=status,
        )

    async def show_page(request: Request) -> Response:
        return_url = request.query_params.get("returnUrl", "")
        if not return_url.startswith(("https://", "http://")):
            return page("", "", "returnUrl 缺失或无效", 400)
        return page(return_url, request.query_params.get("state", ""))

    async def submit_page(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode(errors="replace")).items()}
        return_url, state = form.get("returnUrl", ""), form.get("state", "")
        if not return_url.startswith(("https://", "http://")):
            return page("", "", "returnUrl 缺失或无效", 400)
        try:
            target = await get_sandbox().authorize(
                id_no=form.get("idNo", ""), name=form.get("name", ""), return_url=return_url, state=state
            )
        except SourceRejected as exc:
            return page(return_url, state, f"{exc.code}: {exc.detail}", 403)
        return RedirectResponse(target, status_code=303)

    def transaction(name: str) -> Callable[[Request], Awaitable[Response]]:
        async def call(request: Request) -> Response:
            try:
                envelope = json.loads(await request.body())
            except (ValueError, UnicodeDecodeError):
                return reply(None, c.BAD_REQUEST, "the body is not JSON")
            try:
                _, data = wire.open_envelope(platform, envelope)
                if data is None:
                    raise wire.EnvelopeError("the envelope has no encData")
                return reply(await HANDLERS[name](get_sandbox(), data))
            except wire.EnvelopeError as exc:
                return reply(None, c.BAD_SIGNATURE if exc.bad_signature else c.BAD_REQUEST, str(exc))
            except SourceRejected as exc:
                return reply(None, exc.code, exc.detail)
            except Exception:
                log.exception("mobile insurance transaction %s failed", name)
                return JSONResponse({"code": INTERNAL, "message": "internal error"}, status_code=500)

        return call

    routes = [
        Route(wire.AUTH_PAGE, show_page, methods=["GET"]),
        Route(wire.AUTH_PAGE, submit_page, methods=["POST"]),
        *(Route(path, transaction(name), methods=["POST"]) for name, path in wire.PATHS.items()),
    ]
    return Starlette(routes=routes)
