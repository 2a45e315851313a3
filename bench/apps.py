"""The two reference points of the benchmark, each served by its own uvicorn process.

- ``json_app``: a bare Starlette endpoint returning a small JSON object: the ceiling of the stack.
- ``hello_app``: Strawberry out of the box: ``{ hello }`` with no caches and no extensions, the
  figure the issue compares the project's home query against.

Both are factories (``uvicorn --factory bench.apps:json_app``), served exactly like the project.
"""

from __future__ import annotations

import strawberry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from strawberry.asgi import GraphQL


def json_app() -> Starlette:
    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"hello": "world"})

    return Starlette(routes=[Route("/json", hello, methods=["GET", "POST"])])


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "world"


def hello_app() -> Starlette:
    graphql = GraphQL(strawberry.Schema(query=Query))
    return Starlette(routes=[Route("/graphql", graphql, methods=["GET", "POST"])])
