"""Nonces seen within the signature window: a second request with the same app id and nonce is a replay.

With REDIS_URL every BFF process shares them (``SET NX`` with expiry); without it one process
keeps them in memory, which is why several workers need Redis (main.py refuses otherwise).
"""

from __future__ import annotations

import time
from typing import Protocol


class Nonces(Protocol):
    async def claim(self, app_id: str, nonce: str, ttl_s: int) -> bool:
        """True the first time ``nonce`` is seen for ``app_id`` within ``ttl_s``; False for a replay."""
        ...

    async def close(self) -> None: ...


class MemoryNonces:
    def __init__(self, *, limit: int = 1_000_000) -> None:
        self._seen: dict[str, float] = {}
        self._limit = limit
        self._next_sweep = 0.0

    async def claim(self, app_id: str, nonce: str, ttl_s: int) -> bool:
        now = time.monotonic()
        if now >= self._next_sweep or len(self._seen) >= self._limit:
            self._seen = {key: until for key, until in self._seen.items() if until > now}
            self._next_sweep = now + 10
        key = f"{app_id}\x00{nonce}"
        until = self._seen.get(key)
        if until is not None and until > now:
            return False
        self._seen[key] = now + ttl_s
        return True

    async def close(self) -> None:
        self._seen.clear()


class RedisNonces:
    def __init__(self, url: str, *, namespace: str) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url)
        self._prefix = f"{namespace}:nonce:"

    async def claim(self, app_id: str, nonce: str, ttl_s: int) -> bool:
        return bool(await self._redis.set(f"{self._prefix}{app_id}:{nonce}", b"1", nx=True, ex=ttl_s))

    async def close(self) -> None:
        await self._redis.aclose()


def nonces_from_url(url: str | None, *, namespace: str) -> Nonces:
    if url and url.startswith(("redis://", "rediss://", "unix://")):
        return RedisNonces(url, namespace=namespace)
    return MemoryNonces()
