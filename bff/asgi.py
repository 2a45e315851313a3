"""ASGI factory for uvicorn (``bff.asgi:app`` with ``factory=True``), one app per worker process."""

from __future__ import annotations

from starlette.applications import Starlette

from bff.app import create_app
from bff.settings import Settings


def app() -> Starlette:
    return create_app(Settings())
