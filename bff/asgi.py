"""ASGI factory for uvicorn (``bff.asgi:app`` with ``factory=True``), one app per worker process."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from bff.app import create_app
from bff.security.transport import tls_options
from bff.settings import Settings


def app() -> Starlette:
    return create_app(Settings())


def server_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn serves the app, wherever it is started (main.py, the tests' live server): TLS 1.3
    when TLS_CERTFILE is set, X-Forwarded-Proto believed only from FORWARDED_ALLOW_IPS."""
    return {
        "access_log": False,
        "ws": "websockets-sansio",
        "ws_per_message_deflate": settings.ws_compression,
        **tls_options(settings),
    }
