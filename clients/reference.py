"""A small reference client: what a front end does, in Python. Tests and benchmarks use it.

- ``GraphQLClient.execute``: POST /graphql with ``Authorization: Bearer <token>``.
- ``GraphQLClient.subscribe``: the graphql-transport-ws protocol over a WebSocket:
  connection_init (token in the payload) → connection_ack → subscribe → next… → complete.
- With a ``RequestSigner`` (clients/signing.py) every request is signed as the app's registered
  certificate, and connection_init carries the signature fields.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import websockets

from clients.signing import RequestSigner


class GraphQLError(Exception):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(e.get("message", "") for e in errors))
        self.errors = errors

    @property
    def codes(self) -> list[str]:
        return [e.get("extensions", {}).get("code", "") for e in self.errors]


class GraphQLClient:
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        http: httpx.AsyncClient | None = None,
        signer: RequestSigner | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.signer = signer
        self._http = http or httpx.AsyncClient(timeout=30)

    def _headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"} if self.token else {}

    async def post(self, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        body = json.dumps({"query": query, "variables": variables or {}}, ensure_ascii=False).encode()
        headers = {**self._headers(), "content-type": "application/json"}
        if self.signer is not None:
            headers.update(self.signer.headers("POST", "/graphql", body))
        return await self._http.post(f"{self.base_url}/graphql", content=body, headers=headers)

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Returns ``data``; raises ``GraphQLError`` when the response carries errors."""
        response = await self.post(query, variables)
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if body.get("errors"):  # also the gateway's refusals (401: signature, 400: encryption)
            raise GraphQLError(body["errors"])
        response.raise_for_status()
        data: dict[str, Any] = body["data"]
        return data

    @asynccontextmanager
    async def subscribe(
        self, query: str, variables: dict[str, Any] | None = None, *, protocol: str = "graphql-transport-ws"
    ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        url = self.base_url.replace("http", "ws", 1) + "/graphql"
        async with websockets.connect(url, subprotocols=[protocol], open_timeout=10) as ws:  # type: ignore[list-item]
            init: dict[str, Any] = {"type": "connection_init"}
            payload: dict[str, Any] = {}
            if self.token:
                payload["authorization"] = f"Bearer {self.token}"
            if self.signer is not None:
                payload["signature"] = self.signer.connection_init()
            if payload:
                init["payload"] = payload
            await ws.send(json.dumps(init))
            try:
                ack = json.loads(await ws.recv())
            except websockets.ConnectionClosed as closed:
                code, reason = (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (1006, "")
                raise GraphQLError(
                    [{"message": f"connection refused ({code})", "extensions": {"code": reason or str(code)}}]
                ) from None
            if ack.get("type") != "connection_ack":
                raise GraphQLError([{"message": f"connection refused: {ack}"}])
            op_id = str(next(_ids))
            start = "subscribe" if protocol == "graphql-transport-ws" else "start"
            await ws.send(
                json.dumps({"id": op_id, "type": start, "payload": {"query": query, "variables": variables or {}}})
            )
            yield _messages(ws, op_id)

    async def aclose(self) -> None:
        await self._http.aclose()


_ids = itertools.count(1)


async def _messages(ws: Any, op_id: str) -> AsyncIterator[dict[str, Any]]:
    async for raw in ws:
        message = json.loads(raw)
        kind = message.get("type")
        if kind in ("ping",):
            await ws.send(json.dumps({"type": "pong"}))
            continue
        if message.get("id") != op_id:
            continue
        if kind in ("next", "data"):
            payload = message["payload"]
            if payload.get("errors"):
                raise GraphQLError(payload["errors"])
            yield payload["data"]
        elif kind == "error":
            raise GraphQLError(message["payload"] if isinstance(message["payload"], list) else [message["payload"]])
        elif kind == "complete":
            return
