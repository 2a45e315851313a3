"""The nurse-station callback answers the calling system precisely, and moves nothing it cannot verify."""

from __future__ import annotations

import time

import httpx

from bff.callbacks import sign
from tests.conftest import LiveServer

PATH = "/callbacks/his/queue-changed"
SECRET = "test-callback-secret"


async def _post(server: LiveServer, body: bytes, *, timestamp: int | None = None) -> httpx.Response:
    ts = str(timestamp if timestamp is not None else int(time.time()))
    headers = {"x-timestamp": ts, "x-signature": sign(SECRET, ts, body), "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=server.url) as http:
        return await http.post(PATH, content=body, headers=headers)


async def test_a_session_his_does_not_know_is_a_404_naming_it(server: LiveServer) -> None:
    answer = await _post(server, b'{"scheduleId": "999"}')
    assert answer.status_code == 404
    assert answer.json()["code"] == "UNKNOWN_SCHEDULE" and "999" in answer.json()["message"]


async def test_a_body_without_a_schedule_is_a_400_saying_what_to_send(server: LiveServer) -> None:
    answer = await _post(server, b'{"schedule": 1}')
    assert (answer.status_code, answer.json()["code"]) == (400, "BAD_PAYLOAD")


async def test_an_old_signed_request_is_refused_as_stale(server: LiveServer) -> None:
    answer = await _post(server, b'{"scheduleId": "1"}', timestamp=int(time.time()) - 600)
    assert (answer.status_code, answer.json()["code"]) == (401, "STALE_TIMESTAMP")
