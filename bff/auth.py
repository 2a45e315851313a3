"""Bearer tokens, on HTTP requests and in WebSocket connection_init payloads."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from resolvers import sessions
from resolvers.deps import Deps
from resolvers.errors import NotAuthenticated
from resolvers.identity import ANONYMOUS, Viewer

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def token_from_connection_params(params: Mapping[str, Any] | None) -> str | None:
    """Accepts {"authorization": "Bearer …"}, {"Authorization": …} or {"token": "…"}."""
    if not params:
        return None
    for key in ("authorization", "Authorization"):
        if isinstance(params.get(key), str):
            return bearer(params[key])
    token = params.get("token")
    return token if isinstance(token, str) and token else None


async def resolve_viewer(deps: Deps, token: str | None) -> tuple[Viewer, str | None]:
    """The viewer for a token, or anonymous with the reason the token was refused."""
    if token is None:
        return ANONYMOUS, None
    try:
        return await sessions.viewer(deps, token), None
    except NotAuthenticated as exc:
        return ANONYMOUS, exc.message


def request_id(header: str | None) -> str:
    return header if header and _REQUEST_ID.match(header) else uuid.uuid4().hex
