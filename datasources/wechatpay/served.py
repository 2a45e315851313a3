"""The WeChat Pay sandbox served as WeChat Pay API v3 (paths, bodies, signatures as the real one).

Every request must carry a valid ``Authorization: WECHATPAY2-SHA256-RSA2048 …`` signed with a
merchant API certificate the platform knows (401 SIGN_ERROR otherwise, and for timestamps more than
5 minutes off); every answer, errors and 204s included, is signed with ``Wechatpay-*`` headers. The
bill file behind ``download_url`` is, as on the real one, not signed: its SHA1 is in the answer
that gave the URL. With ``get_med_ins``, the medical-insurance orders (``/v3/med-ins/…``) are served
too; their create request must name WeChat Pay's key in ``Wechatpay-Serial`` (its sensitive fields
are encrypted with it).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from datasources.crypto.primitives import digest, load_public_key
from datasources.errors import SourceRejected, SourceUnavailable
from datasources.wechatpay import contract as c
from datasources.wechatpay import medins_contract as m
from datasources.wechatpay import medins_wire, wire
from datasources.wechatpay.medins_sandbox import SandboxWeChatMedInsPay
from datasources.wechatpay.sandbox import SandboxWeChatPay

log = logging.getLogger(__name__)

STATUS = {
    c.PARAM_ERROR: 400,
    c.INVALID_REQUEST: 400,
    c.ORDER_CLOSED: 400,
    m.ALREADY_EXISTS: 400,
    c.NO_STATEMENT_EXIST: 400,
    c.SIGN_ERROR: 401,
    c.ORDERPAID: 403,
    c.OUT_TRADE_NO_USED: 403,
    c.NOT_ENOUGH: 403,
    m.RULE_LIMIT: 403,
    c.ORDER_NOT_EXIST: 404,
    c.RESOURCE_NOT_EXISTS: 404,
    c.SYSTEM_ERROR: 500,
}
MAX_SKEW_SECONDS = 300


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def wechatpay_sandbox_app(
    get_sandbox: Callable[[], SandboxWeChatPay], get_med_ins: Callable[[], SandboxWeChatMedInsPay] | None = None
) -> Starlette:
    bills: dict[str, bytes] = {}

    def signed(sandbox: SandboxWeChatPay, status: int, payload: Any | None) -> Response:
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        headers = wire.signed_headers(
            sandbox.platform.signing_key(), sandbox.platform.public_key_id, body, int(sandbox.clock.now().timestamp())
        )
        headers["Request-ID"] = secrets.token_hex(16)
        media = "application/json" if payload is not None else None
        return Response(body, status_code=status, headers=headers, media_type=media)

    def authenticate(sandbox: SandboxWeChatPay, request: Request, body: bytes) -> None:
        try:
            params = wire.parse_authorization(request.headers.get("authorization", ""))
        except wire.WireError as exc:
            raise _Refused(c.SIGN_ERROR, f"Authorization: {exc}") from None
        if params["mchid"] != sandbox.merchant.mchid:
            raise _Refused(c.SIGN_ERROR, "unknown mchid")
        pem = dict(sandbox.platform.merchant_certificates).get(params["serial_no"])
        if pem is None:
            raise _Refused(c.SIGN_ERROR, "unknown merchant certificate serial_no")
        timestamp = params["timestamp"]
        if not timestamp.isdigit() or abs(int(timestamp) - sandbox.clock.now().timestamp()) > MAX_SKEW_SECONDS:
            raise _Refused(c.SIGN_ERROR, "timestamp is missing or more than 5 minutes off")
        target = request.scope["raw_path"].decode()
        if request.scope["query_string"]:
            target += "?" + request.scope["query_string"].decode()
        message = wire.request_message(request.method, target, timestamp, params["nonce_str"], body.decode())
        if not wire.verify_b64(load_public_key(pem), params["signature"], message):
            raise _Refused(c.SIGN_ERROR, "signature does not verify")

    def endpoint(handler: Callable[[SandboxWeChatPay, Request, Any], Any]) -> Callable[[Request], Any]:
        async def run(request: Request) -> Response:
            sandbox = get_sandbox()
            body = await request.body()
            try:
                authenticate(sandbox, request, body)
                payload: Any = None
                if request.method == "POST":
                    try:
                        payload = json.loads(body)
                    except (ValueError, UnicodeDecodeError):
                        raise _Refused(c.PARAM_ERROR, "the body is not JSON") from None
                    if not isinstance(payload, dict):
                        raise _Refused(c.PARAM_ERROR, "the body is not a JSON object")
                    if payload.get("mchid", sandbox.merchant.mchid) != sandbox.merchant.mchid:
                        raise _Refused(c.PARAM_ERROR, "mchid does not match the signer")
                result = await handler(sandbox, request, payload)
            except _Refused as exc:
                return signed(sandbox, STATUS.get(exc.code, 400), {"code": exc.code, "message": exc.message})
            except SourceRejected as exc:
                return signed(sandbox, STATUS.get(exc.code, 400), {"code": exc.code, "message": exc.detail})
            except (wire.WireError, KeyError, TypeError) as exc:
                return signed(sandbox, 400, {"code": c.PARAM_ERROR, "message": f"malformed request: {exc}"})
            except SourceUnavailable:
                return signed(sandbox, 500, {"code": c.SYSTEM_ERROR, "message": "system error"})
            except Exception:
                log.exception("WeChat Pay sandbox %s %s failed", request.method, request.url.path)
                return signed(sandbox, 500, {"code": c.SYSTEM_ERROR, "message": "system error"})
            if isinstance(result, Response):
                return result
            return signed(sandbox, 204 if result is None else 200, result)

        return run

    def need(payload: dict[str, Any], *keys: str) -> Any:
        value: Any = payload
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                raise _Refused(c.PARAM_ERROR, f"{'.'.join(keys)} is required")
            value = value[key]
        return value

    def text(payload: dict[str, Any], *keys: str) -> str:
        value = need(payload, *keys)
        if not isinstance(value, str):
            raise _Refused(c.PARAM_ERROR, f"{'.'.join(keys)} must be a string")
        return value

    def mchid_query(sandbox: SandboxWeChatPay, request: Request) -> None:
        if request.query_params.get("mchid") != sandbox.merchant.mchid:
            raise _Refused(c.PARAM_ERROR, "mchid query parameter missing or wrong")

    async def jsapi(sandbox: SandboxWeChatPay, request: Request, p: dict[str, Any]) -> Any:
        if text(p, "appid") != sandbox.merchant.appid or text(p, "mchid") != sandbox.merchant.mchid:
            raise _Refused(c.PARAM_ERROR, "appid and mchid do not match")
        expires: datetime = wire.parse_time(text(p, "time_expire"))
        prepay = await sandbox.prepay_jsapi(
            text(p, "out_trade_no"), text(p, "description"), need(p, "amount", "total"), text(p, "payer", "openid"),
            text(p, "notify_url"), expires,
        )
        return {"prepay_id": prepay.prepay_id}

    async def native(sandbox: SandboxWeChatPay, request: Request, p: dict[str, Any]) -> Any:
        if text(p, "appid") != sandbox.merchant.appid or text(p, "mchid") != sandbox.merchant.mchid:
            raise _Refused(c.PARAM_ERROR, "appid and mchid do not match")
        if "payer" in p:
            raise _Refused(c.PARAM_ERROR, "a Native order has no payer: whoever scans the code pays")
        expires: datetime = wire.parse_time(text(p, "time_expire"))
        prepay = await sandbox.prepay_native(
            text(p, "out_trade_no"), text(p, "description"), need(p, "amount", "total"), text(p, "notify_url"),
            expires,
        )
        return {"code_url": prepay.code_url}

    async def query(sandbox: SandboxWeChatPay, request: Request, _: Any) -> Any:
        mchid_query(sandbox, request)
        return wire.transaction_json(await sandbox.query(request.path_params["out_trade_no"]))

    async def close(sandbox: SandboxWeChatPay, request: Request, p: dict[str, Any]) -> Any:
        text(p, "mchid")
        await sandbox.close(request.path_params["out_trade_no"])
        return None

    async def refund(sandbox: SandboxWeChatPay, request: Request, p: dict[str, Any]) -> Any:
        result = await sandbox.refund(
            text(p, "out_trade_no"), text(p, "out_refund_no"), need(p, "amount", "refund"),
            need(p, "amount", "total"), p.get("reason") or "", p.get("notify_url") or "",
        )
        return wire.refund_json(result)

    async def query_refund(sandbox: SandboxWeChatPay, request: Request, _: Any) -> Any:
        return wire.refund_json(await sandbox.query_refund(request.path_params["out_refund_no"]))

    async def tradebill(sandbox: SandboxWeChatPay, request: Request, _: Any) -> Any:
        bill_type = request.query_params.get("bill_type", "ALL")
        if bill_type != "ALL":
            raise _Refused(c.PARAM_ERROR, "the sandbox keeps bill_type ALL only")
        day = wire.parse_bill_date(request.query_params.get("bill_date", ""))
        content = (await sandbox.bill_text(day)).encode()
        token = secrets.token_urlsafe(24)
        bills[token] = content
        url = str(request.base_url).rstrip("/") + "/v3/billdownload/file?" + urlencode({"token": token})
        return {"hash_type": "SHA1", "hash_value": digest("SHA1", content).hex(), "download_url": url}

    async def download(sandbox: SandboxWeChatPay, request: Request, _: Any) -> Any:
        token = parse_qs(request.scope["query_string"].decode()).get("token", [""])[0]
        content = bills.get(token)
        if content is None:
            raise _Refused(c.RESOURCE_NOT_EXISTS, "no such bill file")
        return Response(content, media_type="text/plain; charset=utf-8")

    async def med_ins_create(sandbox: SandboxWeChatPay, request: Request, p: dict[str, Any]) -> Any:
        assert get_med_ins is not None
        if request.headers.get("wechatpay-serial") != sandbox.platform.public_key_id:
            raise _Refused(c.PARAM_ERROR, "Wechatpay-Serial must name the key the sensitive fields are encrypted with")
        if text(p, "appid") != sandbox.merchant.appid:
            raise _Refused(c.PARAM_ERROR, "appid does not match the merchant")
        order_request = medins_wire.to_order_request(p, sandbox.platform.private_key_pem)
        return medins_wire.order_json(await get_med_ins().create_med_ins_order(order_request))

    async def med_ins_by_mix_trade_no(sandbox: SandboxWeChatPay, request: Request, _: Any) -> Any:
        assert get_med_ins is not None
        return medins_wire.order_json(await get_med_ins().query_med_ins_order(request.path_params["mix_trade_no"]))

    async def med_ins_by_out_trade_no(sandbox: SandboxWeChatPay, request: Request, _: Any) -> Any:
        assert get_med_ins is not None
        order = await get_med_ins().query_med_ins_order_by_out_trade_no(request.path_params["out_trade_no"])
        return medins_wire.order_json(order)

    async def med_ins_refund_notify(sandbox: SandboxWeChatPay, request: Request, p: dict[str, Any]) -> Any:
        assert get_med_ins is not None
        mix_trade_no = request.query_params.get("mix_trade_no")
        if not mix_trade_no:
            raise _Refused(c.PARAM_ERROR, "the mix_trade_no query parameter is required")
        await get_med_ins().notify_med_ins_refund(mix_trade_no, medins_wire.to_refund(p))
        return None

    med_ins_routes = [
        Route("/v3/med-ins/orders", endpoint(med_ins_create), methods=["POST"]),
        Route("/v3/med-ins/orders/mix-trade-no/{mix_trade_no}", endpoint(med_ins_by_mix_trade_no), methods=["GET"]),
        Route("/v3/med-ins/orders/out-trade-no/{out_trade_no}", endpoint(med_ins_by_out_trade_no), methods=["GET"]),
        Route("/v3/med-ins/refunds/notify", endpoint(med_ins_refund_notify), methods=["POST"]),
    ]
    prefix = "/v3/pay/transactions"
    return Starlette(
        routes=[
            *(med_ins_routes if get_med_ins is not None else []),
            Route(f"{prefix}/jsapi", endpoint(jsapi), methods=["POST"]),
            Route(f"{prefix}/native", endpoint(native), methods=["POST"]),
            Route(f"{prefix}/out-trade-no/{{out_trade_no}}", endpoint(query), methods=["GET"]),
            Route(f"{prefix}/out-trade-no/{{out_trade_no}}/close", endpoint(close), methods=["POST"]),
            Route("/v3/refund/domestic/refunds", endpoint(refund), methods=["POST"]),
            Route("/v3/refund/domestic/refunds/{out_refund_no}", endpoint(query_refund), methods=["GET"]),
            Route("/v3/bill/tradebill", endpoint(tradebill), methods=["GET"]),
            Route("/v3/billdownload/file", endpoint(download), methods=["GET"]),
        ]
    )
