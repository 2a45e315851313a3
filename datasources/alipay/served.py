"""The Alipay sandbox served as Alipay's gateway: ``POST /gateway.do`` with the common parameters
(app_id, method, format=JSON, charset=utf-8, sign_type=RSA2, timestamp, version=1.0, notify_url,
biz_content, sign) as a form. The request's signature is verified with the merchant's public key
(code 40002 ``isv.invalid-signature`` otherwise); answers are
``{"<method with _ for .>_response": {...}, "sign": "..."}`` signed by the platform key over the node's
exact text; business refusals are code 40004 with Alipay's sub_code. The bill download URL a
``alipay.data.dataservice.bill.downloadurl.query`` returns is served here too, valid 30 seconds.
Admin (the sandbox only): ``POST /sandbox/pay`` (form out_trade_no, or qr_code for a precreated
trade's code scanned; buyer_id optional) and ``POST /sandbox/deliver``.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from datasources.alipay import contract as c
from datasources.alipay import wire
from datasources.alipay.sandbox import SandboxAlipay
from datasources.errors import SourceRejected, SourceUnavailable

log = logging.getLogger(__name__)
DOWNLOAD_SECONDS = 30.0
TIMESTAMP_WINDOW = timedelta(minutes=30)
Handler = Callable[[SandboxAlipay, dict[str, Any], dict[str, str], Request], Awaitable[dict[str, Any]]]


class _Refused(Exception):
    def __init__(self, code: str, sub_code: str, sub_msg: str) -> None:
        super().__init__(sub_code)
        self.code, self.sub_code, self.sub_msg = code, sub_code, sub_msg


def _text(biz: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = biz.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise SourceRejected(wire.SOURCE, c.INVALID_PARAMETER, f"{name} is required (a string)")
    return value


def alipay_gateway_app(get_sandbox: Callable[[], SandboxAlipay]) -> Starlette:
    downloads: dict[str, tuple[date, float]] = {}

    async def create(sb: SandboxAlipay, biz: dict[str, Any], common: dict[str, str], _: Request) -> dict[str, Any]:
        created = await sb.create_trade(
            out_trade_no=_text(biz, "out_trade_no"), subject=_text(biz, "subject"),
            amount_fen=wire.yuan_to_fen(_text(biz, "total_amount")), buyer_id=_text(biz, "buyer_id"),
            notify_url=common.get("notify_url", ""), expires_at=wire.parse_time(_text(biz, "time_expire")),
        )
        return {"out_trade_no": created.out_trade_no, "trade_no": created.trade_no}

    async def precreate(sb: SandboxAlipay, biz: dict[str, Any], common: dict[str, str], _: Request) -> dict[str, Any]:
        if "buyer_id" in biz:
            raise SourceRejected(wire.SOURCE, c.INVALID_PARAMETER, "no buyer_id: whoever scans pays")
        expire = _text(biz, "time_expire", required=False)
        relative = _text(biz, "timeout_express", required=False)
        if expire:
            expires_at = wire.parse_time(expire)
        elif relative:
            expires_at = sb.clock.now() + wire.parse_timeout_express(relative)
        else:
            raise SourceRejected(wire.SOURCE, c.INVALID_PARAMETER, "time_expire or timeout_express is required")
        created = await sb.precreate_trade(
            out_trade_no=_text(biz, "out_trade_no"), subject=_text(biz, "subject"),
            amount_fen=wire.yuan_to_fen(_text(biz, "total_amount")), notify_url=common.get("notify_url", ""),
            expires_at=expires_at,
        )
        return {"out_trade_no": created.out_trade_no, "qr_code": created.qr_code}

    async def query(sb: SandboxAlipay, biz: dict[str, Any], _c: dict[str, str], _: Request) -> dict[str, Any]:
        trade = await sb.query(_text(biz, "out_trade_no"))
        node = {
            "trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no, "buyer_user_id": trade.buyer_id,
            "trade_status": trade.trade_status, "total_amount": wire.fen_to_yuan(trade.total_fen),
        }
        if trade.gmt_payment is not None:
            node["send_pay_date"] = wire.format_time(trade.gmt_payment)
        return node

    async def close(sb: SandboxAlipay, biz: dict[str, Any], _c: dict[str, str], _: Request) -> dict[str, Any]:
        out_trade_no = _text(biz, "out_trade_no")
        await sb.close(out_trade_no)
        return {"out_trade_no": out_trade_no, "trade_no": (await sb.query(out_trade_no)).trade_no}

    async def refund(sb: SandboxAlipay, biz: dict[str, Any], _c: dict[str, str], _: Request) -> dict[str, Any]:
        done = await sb.refund(
            out_trade_no=_text(biz, "out_trade_no"), out_request_no=_text(biz, "out_request_no"),
            refund_fen=wire.yuan_to_fen(_text(biz, "refund_amount")),
            reason=_text(biz, "refund_reason", required=False),
        )
        return {
            "trade_no": done.trade_no, "out_trade_no": done.out_trade_no,
            "fund_change": "Y" if done.fund_change else "N", "refund_fee": wire.fen_to_yuan(done.refunded_total_fen),
            "send_back_fee": wire.fen_to_yuan(done.refund_fen),
        }

    async def refund_query(sb: SandboxAlipay, biz: dict[str, Any], _c: dict[str, str], _: Request) -> dict[str, Any]:
        out_trade_no = _text(biz, "out_trade_no")
        found = await sb.query_refund(out_trade_no=out_trade_no, out_request_no=_text(biz, "out_request_no"))
        if found is None:  # Alipay answers Success with no refund fields: no such refund was made
            return {"out_trade_no": out_trade_no, "trade_no": (await sb.query(out_trade_no)).trade_no}
        return {
            "trade_no": found.trade_no, "out_trade_no": found.out_trade_no, "out_request_no": found.out_request_no,
            "total_amount": wire.fen_to_yuan(found.total_fen), "refund_amount": wire.fen_to_yuan(found.refund_fen),
            "refund_status": found.refund_status,
        }

    async def bill_url(sb: SandboxAlipay, biz: dict[str, Any], _c: dict[str, str], request: Request) -> dict[str, Any]:
        if _text(biz, "bill_type") != "trade":
            raise SourceRejected(wire.SOURCE, c.INVALID_PARAMETER, "bill_type: only trade")
        try:
            day = date.fromisoformat(_text(biz, "bill_date"))
        except ValueError:
            raise SourceRejected(wire.SOURCE, c.INVALID_PARAMETER, "bill_date is yyyy-MM-dd") from None
        await sb.bill_file(day)  # refuses a day that has no bill yet
        token = secrets.token_urlsafe(24)
        downloads[token] = (day, time.monotonic() + DOWNLOAD_SECONDS)
        return {"bill_download_url": str(request.url_for("bill_download").include_query_params(token=token))}

    methods: dict[str, Handler] = {
        "alipay.trade.create": create,
        "alipay.trade.precreate": precreate,
        "alipay.trade.query": query,
        "alipay.trade.close": close,
        "alipay.trade.refund": refund,
        "alipay.trade.fastpay.refund.query": refund_query,
        "alipay.data.dataservice.bill.downloadurl.query": bill_url,
    }

    def check(sb: SandboxAlipay, params: dict[str, str]) -> None:
        for name in ("app_id", "method", "sign", "timestamp", "version", "biz_content"):
            if not params.get(name):
                sub = "isv.missing-signature" if name == "sign" else f"isv.missing-{name.replace('_', '-')}"
                raise _Refused(wire.MISSING_ARGUMENTS, sub, f"{name} is missing")
        if params["method"] not in methods:
            raise _Refused(wire.INVALID_ARGUMENTS, c.INVALID_METHOD, "no such method")
        if params["app_id"] != sb.platform.app_id:
            raise _Refused(wire.INVALID_ARGUMENTS, c.INVALID_APP_ID, "无效的AppID参数")
        if params.get("sign_type") != "RSA2":
            raise _Refused(wire.INVALID_ARGUMENTS, c.INVALID_SIGNATURE_TYPE, "sign_type is RSA2")
        if params.get("format", "JSON").upper() != "JSON" or params.get("charset", "utf-8").lower() != "utf-8":
            raise _Refused(wire.INVALID_ARGUMENTS, "isv.invalid-format", "format JSON, charset utf-8")
        if params["version"] != "1.0":
            raise _Refused(wire.INVALID_ARGUMENTS, "isv.invalid-version", "version is 1.0")
        try:
            sent: datetime = wire.parse_time(params["timestamp"])
        except SourceRejected:
            raise _Refused(wire.INVALID_ARGUMENTS, c.INVALID_TIMESTAMP, "timestamp is yyyy-MM-dd HH:mm:ss") from None
        if abs(sent - sb.clock.now()) > TIMESTAMP_WINDOW:
            raise _Refused(wire.INVALID_ARGUMENTS, c.INVALID_TIMESTAMP, "timestamp too far from now")
        try:
            wire.verify_params(sb.platform.merchant_public_key, params)
        except SourceRejected:
            raise _Refused(wire.INVALID_ARGUMENTS, c.INVALID_SIGNATURE, "验签出错") from None

    def answer(sb: SandboxAlipay, name: str, node: dict[str, Any], status: int = 200) -> Response:
        body = wire.response_body(name, node, sb.platform.platform_private_key)
        return Response(body, status_code=status, media_type="application/json;charset=utf-8")

    async def gateway(request: Request) -> Response:
        sb = get_sandbox()
        try:
            params = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            params = {}
        params = {**dict(request.query_params), **params}
        method = params.get("method", "")
        name = wire.response_name(method) if method in methods else "error_response"
        try:
            check(sb, params)
            biz = json.loads(params["biz_content"])
            if not isinstance(biz, dict):
                raise SourceRejected(wire.SOURCE, c.INVALID_PARAMETER, "biz_content is a JSON object")
            node = await methods[method](sb, biz, params, request)
        except _Refused as refused:
            msg = wire.MESSAGES[refused.code]
            return answer(sb, name, {"code": refused.code, "msg": msg, "sub_code": refused.sub_code,
                                     "sub_msg": refused.sub_msg})
        except ValueError:
            return answer(sb, name, {"code": wire.BUSINESS_FAILED, "msg": "Business Failed",
                                     "sub_code": c.INVALID_PARAMETER, "sub_msg": "biz_content is not JSON"})
        except SourceRejected as exc:
            return answer(sb, name, {"code": wire.BUSINESS_FAILED, "msg": "Business Failed", "sub_code": exc.code,
                                     "sub_msg": exc.detail})
        except SourceUnavailable:
            return answer(sb, name, {"code": wire.UNAVAILABLE, "msg": wire.MESSAGES[wire.UNAVAILABLE],
                                     "sub_code": "ACQ.SYSTEM_ERROR", "sub_msg": "系统错误"})
        except Exception:
            log.exception("Alipay sandbox method %s failed", method)
            return answer(sb, name, {"code": wire.UNAVAILABLE, "msg": wire.MESSAGES[wire.UNAVAILABLE],
                                     "sub_code": "isp.unknow-error", "sub_msg": "服务暂不可用"}, 500)
        return answer(sb, name, {"code": wire.SUCCESS, "msg": "Success", **node})

    async def bill_download(request: Request) -> Response:
        entry = downloads.pop(request.query_params.get("token", ""), None)
        if entry is None or entry[1] < time.monotonic():
            return Response("the link is unknown or expired", status_code=404)
        data = await get_sandbox().bill_file(entry[0])
        return Response(data, media_type="application/zip")

    async def admin_pay(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode("utf-8")))
        try:
            sandbox, deliver, buyer_id = get_sandbox(), form.get("deliver") != "0", form.get("buyer_id") or None
            if form.get("qr_code"):
                notify_id = await sandbox.pay_code(form["qr_code"], buyer_id, deliver=deliver)
            else:
                notify_id = await sandbox.pay(form.get("out_trade_no", ""), deliver=deliver, buyer_id=buyer_id)
        except SourceRejected as exc:
            return JSONResponse({"code": exc.code, "message": exc.detail}, status_code=409)
        return JSONResponse({"notify_id": notify_id})

    async def admin_deliver(request: Request) -> Response:
        return JSONResponse({"delivered": await get_sandbox().deliver_pending()})

    return Starlette(routes=[
        Route("/gateway.do", gateway, methods=["POST"]),
        Route("/bill/download", bill_download, methods=["GET"], name="bill_download"),
        Route("/sandbox/pay", admin_pay, methods=["POST"]),
        Route("/sandbox/deliver", admin_deliver, methods=["POST"]),
    ])
