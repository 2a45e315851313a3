"""The gateway's ASGI middleware: verifies signed requests on the protected routes and signs the
responses of apps registered for it.

Guarded (SIGNED_ROUTES): ``/graphql`` (HTTP and the WebSocket upgrade) and ``/callbacks/`` by
default. In production every request there must be signed; in development unsigned ones pass
(GraphiQL, curl), counted on ``bff_unsigned_requests_total`` and logged once a minute, while a
signed request that fails is refused in both modes. A WebSocket that cannot sign its upgrade
request (browsers cannot set headers) signs its ``connection_init`` payload instead; the GraphQL
view checks it.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from bff.security.signatures import SignatureRefused, SignedCaller, Verifier, header_map, now_ms, refusal_body
from clients import signing
from datasources.crypto import primitives
from datasources.crypto.primitives import PrivateKey

log = logging.getLogger(__name__)
MAX_SIGNED_BODY = 2 * 1024 * 1024
SIGNATURE_PENDING = "signature_pending"
SIGNED_CALLER = "signed_caller"
# Set by the GraphQL view when a connection_init signature is refused: the close carries its code.
SIGNATURE_REFUSED = "signature_refused"


@dataclass(frozen=True, slots=True)
class ResponseSigner:
    """The BFF's response-signing key and its certificate's serial (issued by the app CA)."""

    key: PrivateKey
    serial: str

    def headers(self, caller: SignedCaller, status: int, body: bytes) -> list[tuple[bytes, bytes]]:
        algorithm = primitives.algorithm_of(self.key)
        timestamp, nonce = str(now_ms()), signing.new_nonce()
        digest = signing.content_digest(algorithm, body)
        message = signing.canonical_response(
            app_id=caller.app.app_id,
            algorithm=algorithm,
            request_nonce=caller.nonce,
            status=status,
            timestamp=timestamp,
            nonce=nonce,
            digest=digest,
        )
        signature = base64.b64encode(primitives.sign(self.key, message)).decode()
        values = {
            signing.SIGN_ALG: algorithm,
            signing.CERT_SERIAL: self.serial,
            signing.TIMESTAMP: timestamp,
            signing.NONCE: nonce,
            signing.CONTENT_DIGEST: digest,
            signing.SIGNATURE: signature,
        }
        return [(name.encode(), value.encode()) for name, value in values.items()]


@dataclass(slots=True)
class GatewayState:
    verifier: Verifier
    response_signer: ResponseSigner | None = None
    # SIGNED_ROUTES: exact paths, or prefixes ending in "/".
    routes: tuple[str, ...] = ("/graphql", "/callbacks/")

    def guards(self, path: str) -> bool:
        return any(path == route or (route.endswith("/") and path.startswith(route)) for route in self.routes)


class SignedRequests:
    def __init__(
        self,
        app: Any,
        *,
        state: Callable[[], GatewayState | None],
        on_unsigned: Callable[[], None],
        on_refused: Callable[[str], None],
    ) -> None:
        self.app = app
        self.state = state
        self.on_unsigned = on_unsigned
        self.on_refused = on_refused
        self._last_unsigned_log = 0.0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        gateway = self.state() if scope["type"] in ("http", "websocket") else None
        if gateway is None or not gateway.guards(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = header_map(scope["headers"])
        if scope["type"] == "websocket":
            send = _closing_with_code(scope, send)
        if signing.APP_ID not in headers:  # unsigned (the HIS callback's own HMAC headers do not count)
            if gateway.verifier.policy.required:
                if scope["type"] == "websocket":
                    scope.setdefault("state", {})[SIGNATURE_PENDING] = True  # connection_init must sign
                    await self.app(scope, receive, send)
                    return
                self.on_refused("SIGNATURE_MISSING")
                await _refuse(send, SignatureRefused("SIGNATURE_MISSING", "This gateway accepts signed requests only."))
                return
            self._unsigned(scope)
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        if scope["type"] == "websocket":
            try:
                caller = await gateway.verifier.verify(headers, method="GET", path=scope["path"], query=query, body=b"")
            except SignatureRefused as refused:
                self.on_refused(refused.code)
                log.info("WebSocket upgrade refused: %s", refused.code)
                await send({"type": "websocket.close", "code": 4401, "reason": refused.code})
                return
            scope.setdefault("state", {})[SIGNED_CALLER] = caller
            await self.app(scope, receive, send)
            return
        body, more = await read_body(receive)
        if more:
            await _refuse(
                send, SignatureRefused("BODY_TOO_LARGE", f"Signed bodies are at most {MAX_SIGNED_BODY} bytes."), 413
            )
            return
        try:
            caller = await gateway.verifier.verify(
                headers, method=scope["method"], path=scope["path"], query=query, body=body
            )
        except SignatureRefused as refused:
            self.on_refused(refused.code)
            await _refuse(send, refused, refused.status)
            return
        scope.setdefault("state", {})[SIGNED_CALLER] = caller
        replay = replaying(body, receive)
        if caller.app.sign_responses and gateway.response_signer is not None:
            await self.app(scope, replay, _signing_send(send, caller, gateway.response_signer))
        else:
            await self.app(scope, replay, send)

    def _unsigned(self, scope: Any) -> None:
        self.on_unsigned()
        now = time.monotonic()
        if now - self._last_unsigned_log >= 60:
            self._last_unsigned_log = now
            log.info(
                "unsigned %s to %s let through (development mode; production refuses it)", scope["type"], scope["path"]
            )


async def read_body(receive: Any, limit: int = MAX_SIGNED_BODY) -> tuple[bytes, bool]:
    """The whole request body, and whether it went over ``limit`` (then the body is dropped)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


def replaying(body: bytes, receive: Any) -> Any:
    """A ``receive`` that hands the already-read body on, once, then the client's own messages."""
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _signing_send(send: Any, caller: SignedCaller, signer: ResponseSigner) -> Any:
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def signing_send(message: Any) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        if message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            headers = [*start.get("headers", []), *signer.headers(caller, start["status"], body)]
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    return signing_send


def _closing_with_code(scope: Any, send: Any) -> Any:
    """graphql-transport-ws closes a refused connection_init with 4403 Forbidden; when the refusal
    was the signature's, the close says which: 4401 and the code as its reason."""

    async def closing(message: Any) -> None:
        refused = scope.get("state", {}).get(SIGNATURE_REFUSED)
        if message["type"] == "websocket.close" and refused:
            message = {**message, "code": 4401, "reason": refused}
        await send(message)

    return closing


async def _refuse(send: Any, refused: SignatureRefused, status: int = 401) -> None:
    body = orjson.dumps(refusal_body(refused))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
