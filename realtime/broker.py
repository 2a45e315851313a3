"""Publish/subscribe behind one facade; the backend is chosen by URL (memory or redis).

Events are plain JSON-able dicts; ``publish`` stamps each with an id and a timestamp. Publish only
after the transaction that produced the event has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

log = logging.getLogger(__name__)

Event = dict[str, Any]
QUEUE_LIMIT = 1000


class Broker(Protocol):
    async def publish(self, topic: str, event: Event) -> Event: ...
    def subscribe(self, topic: str) -> AbstractAsyncContextManager[AsyncIterator[Event]]:
        """``async with broker.subscribe(t) as events``: listening starts on entering, so a
        snapshot read inside the block misses nothing published after it."""
        ...

    async def ping(self) -> None: ...
    async def start(self) -> None: ...
    async def close(self) -> None: ...


def stamp(event: Event) -> Event:
    return {"id": uuid.uuid4().hex, "at": datetime.now(UTC).isoformat(), **event}


class _LocalFanout:
    """Delivers to the subscribers of this process; a slow subscriber loses its oldest events."""

    def __init__(self) -> None:
        self.subscribers: dict[str, set[asyncio.Queue[Event]]] = {}

    def add(self, topic: str) -> asyncio.Queue[Event]:
        q: asyncio.Queue[Event] = asyncio.Queue(QUEUE_LIMIT)
        self.subscribers.setdefault(topic, set()).add(q)
        return q

    def remove(self, topic: str, q: asyncio.Queue[Event]) -> bool:
        """Returns True when the topic has no local subscriber left."""
        subs = self.subscribers.get(topic)
        if subs is None:
            return True
        subs.discard(q)
        if not subs:
            del self.subscribers[topic]
            return True
        return False

    def deliver(self, topic: str, event: Event) -> None:
        for q in self.subscribers.get(topic, ()):
            if q.full():
                q.get_nowait()
            q.put_nowait(event)


async def _drain(q: asyncio.Queue[Event]) -> AsyncIterator[Event]:
    while True:
        yield await q.get()


class MemoryBroker:
    """One process: events go straight to local subscribers."""

    def __init__(self) -> None:
        self._fanout = _LocalFanout()

    async def start(self) -> None:
        return None

    async def publish(self, topic: str, event: Event) -> Event:
        stamped = stamp(event)
        self._fanout.deliver(topic, stamped)
        return stamped

    @asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[AsyncIterator[Event]]:
        q = self._fanout.add(topic)
        try:
            yield _drain(q)
        finally:
            self._fanout.remove(topic, q)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisBroker:
    """Several processes: Redis pub/sub carries events between them, one connection per process.

    Each process subscribes once per topic in Redis, then fans out locally, so a thousand
    subscribers of one queue cost one Redis subscription.
    """

    def __init__(self, url: str, *, namespace: str = "bff") -> None:
        from redis.asyncio import Redis

        # Redis pub/sub channels ignore the database number: the namespace keeps deployments
        # (and test runs) that share one Redis from hearing each other.
        self._prefix = f"{namespace}:"
        self._redis = Redis.from_url(url, decode_responses=True)
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._fanout = _LocalFanout()
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self._redis.ping()

    async def publish(self, topic: str, event: Event) -> Event:
        stamped = stamp(event)
        await self._redis.publish(self._prefix + topic, json.dumps(stamped, ensure_ascii=False))
        return stamped

    @asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[AsyncIterator[Event]]:
        async with self._lock:
            first = topic not in self._fanout.subscribers
            q = self._fanout.add(topic)
            if first:
                await self._pubsub.subscribe(self._prefix + topic)
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read(), name="redis-broker-reader")
        try:
            yield _drain(q)
        finally:
            async with self._lock:
                if self._fanout.remove(topic, q):
                    with contextlib.suppress(Exception):
                        await self._pubsub.unsubscribe(self._prefix + topic)

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("redis broker: reading failed, retrying", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            if message is None:
                if not self._fanout.subscribers:
                    await asyncio.sleep(0.05)
                continue
            if message.get("type") != "message":
                continue
            try:
                event = json.loads(message["data"])
            except (TypeError, ValueError):
                log.warning("redis broker: dropped a message that is not JSON")
                continue
            self._fanout.deliver(message["channel"].removeprefix(self._prefix), event)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
        await self._redis.aclose()


def broker_from_url(url: str | None, *, namespace: str = "bff") -> Broker:
    if not url or url.startswith("memory://"):
        return MemoryBroker()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBroker(url, namespace=namespace)
    raise ValueError(f"unsupported broker URL scheme: {url.split(':', 1)[0]}")
