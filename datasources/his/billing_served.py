"""Any ``HISBilling`` served in the HIS gateway's wire format, at ``/his/v1/billing/<method>``.

What ``HttpHISBilling`` is tested against. Under one mount the HIS API and its billing methods are
``his_gateway_sandbox_app``: two mounts at one prefix would not do, the first would answer 404 for
the other's paths. Malformed requests get a 400 whose message names the offending argument;
refusals keep their codes; an unavailable HIS is a 503; anything else a masked 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from datasources.errors import SourceRejected, SourceUnavailable
from datasources.his import billing_wire, wire
from datasources.his.billing import HISBilling
from datasources.his.contract import HIS
from datasources.his.served import his_sandbox_app

log = logging.getLogger(__name__)


def his_billing_sandbox_app(get_billing: Callable[[], HISBilling]) -> Starlette:
    """Serves ``get_billing()`` (looked up per request, so it may be built later, in a lifespan)."""

    def refuse(code: str, message: str, status: int) -> JSONResponse:
        return JSONResponse(wire.rejection(code, message), status_code=status)

    async def call(request: Request) -> JSONResponse:
        name = request.path_params["method"]
        method = billing_wire.METHODS.get(name)
        if method is None:
            return refuse(wire.UNKNOWN_METHOD, f"no HIS billing method {name!r}", 404)
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return refuse(wire.BAD_REQUEST, "the body is not valid JSON", 400)
        try:
            arguments = wire.decode_arguments(method, body)
        except wire.WireError as exc:
            return refuse(wire.BAD_REQUEST, str(exc), 400)
        try:
            result = await getattr(get_billing(), name)(**arguments)
        except SourceRejected as exc:
            return refuse(exc.code, exc.detail, 200)
        except SourceUnavailable:
            return refuse(wire.UNAVAILABLE, "HIS is unavailable", 503)
        except Exception:
            log.exception("HIS billing method %s failed", name)
            return refuse(wire.INTERNAL, "internal error", 500)
        return JSONResponse(wire.success(method, result))

    return Starlette(routes=[Route(billing_wire.PREFIX + "{method}", call, methods=["POST"])])


def his_gateway_sandbox_app(get_his: Callable[[], HIS], get_billing: Callable[[], HISBilling]) -> Starlette:
    """The whole HIS gateway: ``/his/v1/<method>`` and ``/his/v1/billing/<method>`` (their paths do not
    overlap: a method name has no slash)."""
    return Starlette(routes=[*his_billing_sandbox_app(get_billing).routes, *his_sandbox_app(get_his).routes])
