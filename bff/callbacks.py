"""Inbound callbacks from hospital systems: the nurse-station calling system tells us the queue moved.

Callbacks are authenticated with HMAC-SHA256 over ``timestamp + "\\n" + body`` in
``X-Signature`` (hex) and ``X-Timestamp`` (unix seconds, within five minutes). The payload is only
a hint: the BFF reads the queue's state from HIS itself, so a forged body cannot invent positions.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse

from datasources.errors import SourceUnavailable
from resolvers.deps import Deps
from resolvers.registration import publish_queue

MAX_SKEW_S = 300


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"\n" + body, hashlib.sha256).hexdigest()


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def queue_changed(deps: Deps, secret: str) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def endpoint(request: Request) -> JSONResponse:
        body = await request.body()
        timestamp = request.headers.get("x-timestamp", "")
        signature = request.headers.get("x-signature", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_SKEW_S:
            return _error(401, "STALE_TIMESTAMP", "X-Timestamp must be unix seconds within five minutes of now.")
        if not hmac.compare_digest(sign(secret, timestamp, body), signature):
            return _error(401, "BAD_SIGNATURE", "X-Signature does not match the body.")
        try:
            payload = json.loads(body)
            schedule_id = str(payload["scheduleId"])
        except (ValueError, KeyError, TypeError):
            return _error(400, "BAD_PAYLOAD", 'Send JSON like {"scheduleId": "123"}.')
        try:
            snapshot = await publish_queue(deps, schedule_id)
        except SourceUnavailable:
            return _error(503, "HIS_UNAVAILABLE", "HIS is not answering; the calling system may retry.")
        if snapshot is None:
            return _error(404, "UNKNOWN_SCHEDULE", f"HIS has no session {schedule_id}.")
        return JSONResponse({"ok": True, "calledNumber": snapshot.called_number, "waiting": len(snapshot.waiting)})

    return endpoint
