"""One subscriber process of bench/fanout.py: many WebSockets, each following one registration.

Reads ``[[token, registration_id], ...]`` from a JSON file, opens one graphql-transport-ws socket
per registration (connection_init with the token, then ``queueUpdates``), waits for each first
position, prints ``READY <n>``, and from then on records the wall-clock time of every update.
Commands on stdin: ``COUNT`` → ``COUNT <updates so far>``; ``DUMP`` → ``DUMP <json>`` and exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import time
from typing import Any

import websockets

QUERY = """subscription Q($id: ID!) {
  queueUpdates(registrationId: $id) { registrationId state queueNumber calledNumber ahead }
}"""


async def follow(
    url: str, token: str, registration_id: str, ready: asyncio.Event, received: list[tuple[float, str, int]],
    opened: asyncio.Semaphore, counter: list[int], failures: list[str],
) -> None:
    try:
        async with opened:
            ws = await websockets.connect(url, subprotocols=["graphql-transport-ws"], open_timeout=60)  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if ack.get("type") != "connection_ack":
                raise RuntimeError(f"refused: {ack}")
            payload = {"query": QUERY, "variables": {"id": registration_id}}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            while True:
                first = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if first.get("type") == "ping":
                    await ws.send(json.dumps({"type": "pong"}))
                    continue
                if first.get("type") != "next":
                    raise RuntimeError(f"unexpected first message: {first}")
                break
        counter[0] += 1
        if counter[0] == counter[1]:
            ready.set()
        async for raw in ws:
            at = time.time()
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif kind == "next":
                position = message["payload"]["data"]["queueUpdates"]
                received.append((at, registration_id, position["ahead"]))
            elif kind in ("complete", "error"):
                return
    except (Exception, asyncio.CancelledError) as exc:  # recorded, so the coordinator sees it
        failures.append(f"{registration_id}: {type(exc).__name__}: {exc}")
        counter[0] += 1
        if counter[0] == counter[1]:
            ready.set()
        if isinstance(exc, asyncio.CancelledError):
            raise


async def main(url: str, path: str) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    subscriptions: list[tuple[str, str]] = json.loads(open(path).read())  # noqa: ASYNC230
    received: list[tuple[float, str, int]] = []
    failures: list[str] = []
    ready = asyncio.Event()
    counter = [0, len(subscriptions)]
    opened = asyncio.Semaphore(20)
    tasks = [
        asyncio.create_task(follow(url, token, rid, ready, received, opened, counter, failures))
        for token, rid in subscriptions
    ]
    await ready.wait()
    print(f"READY {len(subscriptions) - len(failures)} {json.dumps(failures[:5])}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        if line == "COUNT":
            print(f"COUNT {len(received)}", flush=True)
        elif line == "DUMP":
            out: dict[str, Any] = {"received": received, "failures": failures}
            print("DUMP " + json.dumps(out), flush=True)
            break
    for task in tasks:
        task.cancel()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(sys.argv[1], sys.argv[2]))
