"""Any ``HISInpatient`` served in the HIS gateway's wire format, at ``/his/v1/inpatient/<method>``.

What ``HttpHISInpatient`` is tested against. Malformed requests get a 400 whose message names the
offending argument; refusals keep their codes; an unavailable HIS is a 503 (which is also how the
sandbox's ``fail_next`` faults reach an HTTP caller); anything else a masked 500.
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
from datasources.his import inpatient_wire, wire
from datasources.his.billing import HISBilling
from datasources.his.billing_served import his_gateway_sandbox_app
from datasources.his.contract import HIS
from datasources.his.inpatient import HISInpatient

log = logging.getLogger(__name__)


def his_inpatient_sandbox_app(get_inpatient: Callable[[], HISInpatient]) -> Starlette:
    """Serves ``get_inpatient()`` (looked up per request, so it may be built later, in a lifespan)."""

    def refuse(code: str, message: str, status: int) -> JSONResponse:
        return JSONResponse(wire.rejection(code, message), status_code=status)

    async def call(request: Request) -> JSONResponse:
        name = request.path_params["method"]
        method = inpatient_wire.METHODS.get(name)
        if method is None:
            return refuse(wire.UNKNOWN_METHOD, f"no HIS inpatient method {name!r}", 404)
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return refuse(wire.BAD_REQUEST, "the body is not valid JSON", 400)
        try:
            arguments = wire.decode_arguments(method, body)
        except wire.WireError as exc:
            return refuse(wire.BAD_REQUEST, str(exc), 400)
        try:
            result = await getattr(get_inpatient(), name)(**arguments)
        except SourceRejected as exc:
            return refuse(exc.code, exc.detail, 200)
        except SourceUnavailable:
            return refuse(wire.UNAVAILABLE, "HIS is unavailable", 503)
        except Exception:
            log.exception("HIS inpatient method %s failed", name)
            return refuse(wire.INTERNAL, "internal error", 500)
        return JSONResponse(wire.success(method, result))

    return Starlette(routes=[Route(inpatient_wire.PREFIX + "{method}", call, methods=["POST"])])


def his_hospital_gateway_sandbox_app(
    get_his: Callable[[], HIS], get_billing: Callable[[], HISBilling], get_inpatient: Callable[[], HISInpatient]
) -> Starlette:
    """The whole HIS gateway under one mount: ``/his/v1/<method>``, ``/his/v1/billing/<method>`` and
    ``/his/v1/inpatient/<method>`` (a method name has no slash, so the paths do not overlap)."""
    return Starlette(
        routes=[
            *his_inpatient_sandbox_app(get_inpatient).routes,
            *his_gateway_sandbox_app(get_his, get_billing).routes,
        ]
    )
