"""The insurance platform sandbox served at the platform's one endpoint, envelope in and envelope out.

``POST /fsi/api/rsfComIfsService/callService`` with the JSON request envelope; the answer is the
response envelope (HTTP 200 whether ``infcode`` says success or failure, as the platform does). A
body that is not an envelope gets a failure envelope with ``BAD_REQUEST`` and HTTP 400.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from datasources.clock import SHANGHAI, Clock
from datasources.insurance import contract as c
from datasources.insurance import wire
from datasources.insurance.sandbox import InsurancePlatformSandbox

log = logging.getLogger(__name__)


def insurance_platform_app(get_sandbox: Callable[[], InsurancePlatformSandbox], clock: Clock) -> Starlette:
    """Serves ``get_sandbox()`` (looked up per request, so it may be built later, in a lifespan)."""

    def answer(envelope: wire.Response, status: int = 200) -> Response:
        return Response(wire.dumps(envelope.to_json()), status_code=status, media_type="application/json")

    def refuse(code: str, detail: str, status: int) -> Response:
        stamp = clock.now().astimezone(SHANGHAI).strftime("%Y%m%d%H%M%S%f")[:17]
        return answer(wire.Response(wire.FAILURE, "", stamp, stamp, wire.coded(code, detail)), status)

    async def call_service(request: Request) -> Response:
        try:
            envelope = wire.Request.from_json(wire.loads(await request.body()))
        except (ValueError, UnicodeDecodeError) as exc:  # EnvelopeError is a ValueError, as is bad JSON
            detail = str(exc) if isinstance(exc, wire.EnvelopeError) else "the body is not JSON"
            return refuse(c.BAD_REQUEST, detail, 400)
        try:
            return answer(await get_sandbox().handle(envelope))
        except Exception:
            log.exception("insurance transaction %s failed", envelope.infno)
            return refuse("INTERNAL", "internal error", 500)

    return Starlette(routes=[Route(wire.PATH, call_service, methods=["POST"])])
