"""The first proof that the whole stack runs: serve, log in, look at the catalog."""

from __future__ import annotations

import asyncio
import gc

import httpx

from tests.conftest import LiveServer
from tests.factories import Hospital

CAMPUSES = "{ campuses { id name coordinateSystem } }"


async def test_health_readiness_and_metrics_answer(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
        metrics = await http.get("/metrics")
        assert "bff_http_requests_total" in metrics.text
        gc.collect()  # a full collection while the server runs is recorded with its pause
        await asyncio.sleep(0.25)  # and the loop-lag watcher has timed at least one tick
        text = (await http.get("/metrics")).text
        assert 'bff_gc_pause_seconds_count{generation="2"}' in text
        lag = next(line for line in text.splitlines() if line.startswith("bff_event_loop_lag_seconds_count"))
        assert float(lag.split()[-1]) >= 1


async def test_a_patient_logs_in_and_reads_the_catalog(server: LiveServer) -> None:
    hospital = await Hospital(server.deps.db, server.deps.clock).build()
    handle = await hospital.patient(server.url)
    data = await handle.client.execute(CAMPUSES)
    assert data["campuses"] == [{"id": hospital.campus_id, "name": "桃源院区", "coordinateSystem": "GCJ02"}]


UNREAD = "{ me { unreadNotificationCount } }"


async def test_each_operation_on_one_websocket_sees_fresh_data(server: LiveServer) -> None:
    """A WebSocket shares one context across operations; nothing may be cached between them."""
    import json

    import websockets

    from resolvers import cache_keys, notifications

    hospital = await Hospital(server.deps.db, server.deps.clock).build()
    handle = await hospital.patient(server.url)
    url = server.url.replace("http", "ws", 1) + "/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {handle.token}"}}))
        ack = await ws.recv()
        assert isinstance(ack, str), "graphql-ws clients in browsers read text frames only"
        # the client offered permessage-deflate (websockets does by default); the server declines
        assert "permessage-deflate" in (ws.request.headers.get("Sec-WebSocket-Extensions") or "")  # type: ignore[union-attr]
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None  # type: ignore[union-attr]
        assert json.loads(ack)["type"] == "connection_ack"

        async def unread(op_id: str) -> int:
            await ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": {"query": UNREAD}}))
            message = json.loads(await ws.recv())
            assert json.loads(await ws.recv())["type"] == "complete"
            return int(message["payload"]["data"]["me"]["unreadNotificationCount"])

        before = await unread("1")
        async with server.deps.db.writing() as s:
            notifications.add(s, account_id=int(handle.account_id), kind="TEST", title="t", body="b",
                              at=server.deps.clock.now())
        await server.deps.invalidate(cache_keys.unread(int(handle.account_id)))  # as every BFF write does
        assert await unread("2") == before + 1
