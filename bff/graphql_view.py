"""The GraphQL endpoint: HTTP (GraphiQL in development) and WebSocket subscriptions."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError

from bff.auth import bearer, request_id, resolve_viewer, token_from_connection_params
from bff.context import Context
from bff.loaders import Loaders
from bff.security.gateway import SIGNATURE_PENDING, SIGNATURE_REFUSED, SIGNED_CALLER, GatewayState
from bff.security.signatures import SignatureRefused, connection_init_headers
from resolvers import devices
from resolvers.deps import Deps


class BFFGraphQL(GraphQL[Context, None]):
    def __init__(self, schema: Any, deps: Deps, *, graphiql: bool, gateway: GatewayState | None = None) -> None:
        super().__init__(schema, graphql_ide="graphiql" if graphiql else None, keep_alive=True, keep_alive_interval=15)
        self.deps = deps
        self.gateway = gateway

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    def encode_json(self, data: object) -> str:
        """orjson: several times faster than json for the same output (no escaping of 中文). A str,
        not bytes: on a WebSocket bytes would go out as binary frames, which graphql-ws clients in
        browsers cannot parse."""
        return orjson.dumps(data).decode()

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        context = Context(
            deps=self.deps, loaders=Loaders(self.deps), request=request, response=response,
            request_id=request_id(request.headers.get("x-request-id")),
        )
        payments = self.deps.payments
        if payments is not None and not payments.public_base_url and isinstance(request, Request):
            # Development without PUBLIC_BASE_URL: the channels notify the address requests come to.
            payments.public_base_url = str(request.base_url).rstrip("/")
        # On a WebSocket this runs once per connection; browsers cannot set headers on the upgrade,
        # so the token usually arrives in connection_init instead (on_ws_connect).
        context.viewer, context.auth_error = await resolve_viewer(
            self.deps, bearer(request.headers.get("authorization"))
        )
        if not context.viewer.is_authenticated:
            # A kiosk or bedside terminal signs its requests and is its own caller (no login).
            caller = request.scope.get("state", {}).get(SIGNED_CALLER)
            if caller is not None and caller.app.kind == "DEVICE" and caller.app.enabled:
                context.viewer = await devices.viewer(self.deps, app_id=caller.app.app_id, name=caller.app.name)
                context.auth_error = None
        return context

    async def on_ws_connect(self, context: Context) -> Any:
        await self._check_signed_connection(context)
        token = token_from_connection_params(context.connection_params)
        if token is not None:
            viewer, error = await resolve_viewer(self.deps, token)
            if error is not None:
                raise ConnectionRejectionError({"code": "UNAUTHENTICATED", "message": error})
            context.viewer, context.auth_error = viewer, None
        return {"role": context.viewer.role} if context.viewer.is_authenticated else None

    async def _check_signed_connection(self, context: Context) -> None:
        """A WebSocket whose upgrade was not signed signs its connection_init (``signature`` in the
        payload, see clients/signing.py); required in production, checked whenever present."""
        if self.gateway is None:
            return
        socket = context.request
        pending = socket.scope.get("state", {}).get(SIGNATURE_PENDING, False)
        headers = connection_init_headers(context.connection_params)
        if not headers and not pending:
            return
        try:
            caller = await self.gateway.verifier.verify(headers, method="WS", path=socket.url.path, query="", body=b"")
        except SignatureRefused as refused:
            socket.scope.setdefault("state", {})[SIGNATURE_REFUSED] = refused.code
            raise ConnectionRejectionError({"code": refused.code, "message": refused.message}) from None
        socket.scope.setdefault("state", {})[SIGNED_CALLER] = caller
