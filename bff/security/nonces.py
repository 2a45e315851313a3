"""Nonces seen within the signature window: a second request with the same app id and nonce is a replay.

A nonce needs remembering only while its timestamp would still be accepted (timestamp + skew),
so the verifier passes that remaining time as ``ttl_s``. With REDIS_URL every BFF process shares
them (``SET NX`` with expiry); without it one process keeps them in memory, which is why several
workers need Redis (main.py refuses otherwise).
"""

from __future__ import annotations

import heapq
import time
from typing import Protocol


class NonceStoreFull(Exception):
    """Too many live nonces to remember one more: refuse the request rather than forget a nonce."""


class Nonces(Protocol):
    async def claim(self, app_id: str, nonce: str, ttl_s: int) -> bool:
        """True the first time ``nonce`` is seen for ``app_id`` within ``ttl_s``; False for a replay."""
        ...

    async def close(self) -> None: ...


class MemoryNonces:
    """Expiry by a heap: each claim drops what has expired, so no sweep ever walks the whole store."""

    def __init__(self, *, limit: int = 2_000_000) -> None:
        self._until: dict[str, float] = {}
        self._expiring: list[tuple[float, str]] = []
        self._limit = limit

    async def claim(self, app_id: str, nonce: str, ttl_s: int) -> bool:
        now = time.monotonic()
        expiring, until = self._expiring, self._until
        while expiring and expiring[0][0] <= now:
            at, old = heapq.heappop(expiring)
            if until.get(old) == at:
                del until[old]
        key = f"{app_id}\x00{nonce}"
        if key in until:
            return False
        if len(until) >= self._limit:
            raise NonceStoreFull(f"{len(until)} nonces are live")
        at = now + ttl_s
        until[key] = at
        heapq.heappush(expiring, (at, key))
        return True

    async def close(self) -> None:
        self._until.clear()
        self._expiring.clear()


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
