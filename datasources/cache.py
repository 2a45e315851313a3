"""A small in-process read cache with time limits, generations and cluster-wide invalidation.

What a request reads again and again (sessions, the catalog, an account's patients, HIS lists)
is kept here for a few seconds to minutes. Every write that changes such data invalidates its keys
through ``realtime.invalidations.Invalidations``, which publishes them on the broker so every BFF
process drops them too.
A value loaded while an invalidation happened is not stored (the key's generation moved on), so a
slow read can never put back what a write just replaced.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
_MISSING = object()


class Cache:
    def __init__(self, *, max_entries: int = 50_000, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        # Generations: a key's is the counter value of its last invalidation, or the base for keys
        # not invalidated since the table was last pruned (which moves the base on, so loads that
        # started before a prune are not stored either).
        self._generations: dict[str, int] = {}
        self._counter = 0
        self._base = 0
        self._max = max_entries
        self._now = monotonic
        self._inflight: dict[str, asyncio.Future[Any]] = {}

    def get(self, key: str) -> Any:
        """The cached value, or ``Cache.MISSING``."""
        entry = self._entries.get(key)
        if entry is None:
            return _MISSING
        if entry[0] <= self._now():
            del self._entries[key]
            return _MISSING
        return entry[1]

    MISSING = _MISSING

    def generation(self, key: str) -> int:
        return self._generations.get(key, self._base)

    def put(self, key: str, value: Any, ttl: float, *, generation: int) -> None:
        """Stores unless ``key`` was invalidated since ``generation`` was read."""
        if self._generations.get(key, self._base) != generation:
            return
        self._entries[key] = (self._now() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every value (generations move on, so loads in flight are not stored either)."""
        self.invalidate(list(self._entries))

    def invalidate(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._entries.pop(key, None)
            self._counter += 1
            self._generations[key] = self._counter
        if len(self._generations) > self._max:
            self._counter += 1
            self._base = self._counter
            self._generations.clear()

    async def through(self, key: str, ttl: float, load: Callable[[], Awaitable[T]]) -> T:
        """The cached value, or one load shared by every caller that misses at the same time."""
        found = self.get(key)
        if found is not _MISSING:
            return found  # type: ignore[no-any-return]
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)  # type: ignore[no-any-return]
        generation = self.generation(key)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        else:
            future.set_result(value)
            self.put(key, value, ttl, generation=generation)
            return value
        finally:
            del self._inflight[key]

    async def many(
        self, prefix: str, keys: Sequence[Any], ttl: float, load: Callable[[list[Any]], Awaitable[Sequence[T]]]
    ) -> list[T]:
        """A batch lookup (for DataLoaders): loads only the missing keys, in one call, in order;
        keys another caller is loading already are waited for, not loaded twice."""
        found: dict[Any, Any] = {}
        missing: list[Any] = []
        waiting: dict[Any, asyncio.Future[Any]] = {}
        for k in keys:
            value = self.get(f"{prefix}:{k}")
            if value is not _MISSING:
                found[k] = value
            elif (pending := self._inflight.get(f"{prefix}:{k}")) is not None:
                waiting[k] = pending
            else:
                missing.append(k)
        if missing:
            loop = asyncio.get_running_loop()
            generations = {k: self.generation(f"{prefix}:{k}") for k in missing}
            futures = {k: loop.create_future() for k in missing}
            for k in missing:
                self._inflight[f"{prefix}:{k}"] = futures[k]
            try:
                values = await load(missing)
            except BaseException as exc:
                for future in futures.values():
                    future.set_exception(exc)
                    future.exception()
                raise
            finally:
                for k in missing:
                    del self._inflight[f"{prefix}:{k}"]
            for k, value in zip(missing, values, strict=True):
                found[k] = value
                futures[k].set_result(value)
                self.put(f"{prefix}:{k}", value, ttl, generation=generations[k])
        for k, pending in waiting.items():
            found[k] = await asyncio.shield(pending)
        return [found[k] for k in keys]
