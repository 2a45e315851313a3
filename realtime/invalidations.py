"""Cache invalidations that reach every BFF process: applied here at once, published on the broker
for the others (each process listens from start-up to shutdown)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Protocol

from realtime.broker import Broker

log = logging.getLogger(__name__)
TOPIC = "cache-invalidations"


class Invalidatable(Protocol):
    def invalidate(self, keys: Iterable[str]) -> None: ...


class Invalidations:
    """Invalidates keys here at once and, through the broker, in every other BFF process."""

    def __init__(self, cache: Invalidatable, broker: Broker) -> None:
        self.cache = cache
        self.broker = broker
        self._listener: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="cache-invalidations")
        await asyncio.wait_for(self._ready.wait(), timeout=10)

    async def _listen(self) -> None:
        while True:
            try:
                async with self.broker.subscribe(TOPIC) as events:
                    self._ready.set()
                    async for event in events:
                        self.cache.invalidate(event.get("keys", ()))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("cache invalidation listener failed; resubscribing", exc_info=True)
                await asyncio.sleep(1)

    async def invalidate(self, *keys: str) -> None:
        self.cache.invalidate(keys)
        try:
            await self.broker.publish(TOPIC, {"keys": list(keys)})
        except Exception:
            log.warning("could not broadcast a cache invalidation; other processes catch up by expiry")

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
