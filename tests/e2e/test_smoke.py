"""The first proof that the whole stack runs: serve, log in, look at the catalog."""

from __future__ import annotations

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


async def test_a_patient_logs_in_and_reads_the_catalog(server: LiveServer) -> None:
    hospital = await Hospital(server.deps.db, server.deps.clock).build()
    handle = await hospital.patient(server.url)
    data = await handle.client.execute(CAMPUSES)
    assert data["campuses"] == [{"id": hospital.campus_id, "name": "桃源院区", "coordinateSystem": "GCJ02"}]
