"""Any ``HIS`` implementation served in the HIS gateway's wire format, as its own small ASGI app.

The sandbox served this way is what ``HttpHIS`` is tested against, and what a BFF configured with
``his.mode = "http"`` can talk to when no hospital is at hand. Malformed requests get a 400 with a
message that names the offending argument; refusals of HIS keep their codes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from datasources.errors import SourceRejected, SourceUnavailable
from datasources.his import wire
from datasources.his.contract import HIS

log = logging.getLogger(__name__)


def serve_methods(
    methods: Mapping[str, wire.Method], prefix: str, get_impl: Callable[[], Any], what: str
) -> Starlette:
    """Serves ``get_impl()`` (looked up per request, so it may be built later, in a lifespan) in the HIS
    gateway's wire format: ``POST {prefix}<method>`` for each method of ``methods``. ``what`` names the
    API in messages ("HIS", "HIS billing")."""

    def refuse(code: str, message: str, status: int) -> JSONResponse:
        return JSONResponse(wire.rejection(code, message), status_code=status)

    async def call(request: Request) -> JSONResponse:
        name = request.path_params["method"]
        method = methods.get(name)
        if method is None:
            return refuse(wire.UNKNOWN_METHOD, f"no {what} method {name!r}", 404)
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return refuse(wire.BAD_REQUEST, "the body is not valid JSON", 400)
        try:
            arguments = wire.decode_arguments(method, body)
        except wire.WireError as exc:
            return refuse(wire.BAD_REQUEST, str(exc), 400)
        try:
            result = await getattr(get_impl(), name)(**arguments)
        except SourceRejected as exc:
            return refuse(exc.code, exc.detail, 200)
        except SourceUnavailable:
            return refuse(wire.UNAVAILABLE, "HIS is unavailable", 503)
        except Exception:
            log.exception("%s method %s failed", what, name)
            return refuse(wire.INTERNAL, "internal error", 500)
        return JSONResponse(wire.success(method, result))

    return Starlette(routes=[Route(prefix + "{method}", call, methods=["POST"])])


def his_sandbox_app(get_his: Callable[[], HIS]) -> Starlette:
    return serve_methods(wire.METHODS, wire.PREFIX, get_his, "HIS")
