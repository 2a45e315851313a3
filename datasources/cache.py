"""A small in-process read cache with time limits, generations and cluster-wide invalidation.

What a request reads again and again (sessions, the catalog, an account's patients, HIS lists)
is kept here for a few seconds to minutes. Every write that changes such data invalidates its keys
through ``realtime.invalidations.Invalidations``, which publishes them on the broker so every BFF
process drops them too.
A value loaded while an invalidation happened is not stored (the key's generation moved on), so a
slow read can never put back what a write just replaced.

Read through ``through`` and ``many``, a value is refreshed ahead: the first read in the last
quarter of its lifetime starts one load in the background and is answered from the cache. Under
steady traffic a busy key is never missing, so no burst of requests waits on its reload; a value
is still never older than its lifetime, and a refresh that fails drops it (the next read meets the
failure itself).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
_MISSING = object()
REFRESH_AHEAD = 0.25  # the share of a lifetime, at its end, in which a read refreshes the value
log = logging.getLogger(__name__)


class Cache:
    def __init__(self, *, max_entries: int = 50_000, monotonic: Callable[[], float] = time.monotonic) -> None:
        # key -> (expires at, refresh from, value), on the monotonic clock
        self._entries: OrderedDict[str, tuple[float, float, Any]] = OrderedDict()
        # Generations: a key's is the counter value of its last invalidation, or the base for keys
        # not invalidated since the table was last pruned (which moves the base on, so loads that
        # started before a prune are not stored either).
        self._generations: dict[str, int] = {}
        self._counter = 0
        self._base = 0
        self._max = max_entries
        self._now = monotonic
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self._refreshing: set[asyncio.Task[None]] = set()

    def get(self, key: str) -> Any:
        """The cached value, or ``Cache.MISSING``."""
        entry = self._entries.get(key)
        if entry is None:
            return _MISSING
        if entry[0] <= self._now():
            del self._entries[key]
            return _MISSING
        return entry[2]

    def _due(self, key: str) -> bool:
        """In the last part of its lifetime, with no load of it under way."""
        entry = self._entries.get(key)
        return entry is not None and entry[1] <= self._now() and key not in self._inflight

    MISSING = _MISSING

    def generation(self, key: str) -> int:
        return self._generations.get(key, self._base)

    def put(self, key: str, value: Any, ttl: float, *, generation: int) -> None:
        """Stores unless ``key`` was invalidated since ``generation`` was read."""
        if self._generations.get(key, self._base) != generation:
            return
        now = self._now()
        self._entries[key] = (now + ttl, now + ttl * (1 - REFRESH_AHEAD), value)
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

    async def through(
        self,
        key: str,
        ttl: float,
        load: Callable[[], Awaitable[T]],
        *,
        usable: Callable[[Any], bool] | None = None,
        due: Callable[[Any], bool] | None = None,
    ) -> T:
        """The cached value, or one load shared by every caller that misses at the same time.

        ``usable`` can refuse a cached value (it is then loaded again, once for every caller);
        ``due`` can ask for a refresh ahead earlier than the last quarter of the lifetime."""
        found = self.get(key)
        if found is not _MISSING and (usable is None or usable(found)):
            if self._due(key) or (due is not None and key not in self._inflight and due(found)):
                self._refresh(key, ttl, load)
            return found  # type: ignore[no-any-return]
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)  # type: ignore[no-any-return]
        return await self._load(key, ttl, load)

    def _refresh(self, key: str, ttl: float, load: Callable[[], Awaitable[Any]]) -> None:
        loading = self._begin(key)  # in flight from now on: the next reader does not start another

        async def refresh() -> None:
            try:
                await loading(ttl, load)
            except Exception as exc:  # never serve on what the source just refused: the next read asks it
                self._entries.pop(key, None)
                log.warning("refreshing the cached %s failed: %s", key.split(":", 1)[0], type(exc).__name__)

        self._background(refresh())

    def _background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._refreshing.add(task)
        task.add_done_callback(self._refreshing.discard)

    async def close(self) -> None:
        """Stops the refreshes under way (at shutdown, before their data sources close)."""
        for task in list(self._refreshing):
            task.cancel()
        await asyncio.gather(*self._refreshing, return_exceptions=True)
        for key, future in list(self._inflight.items()):  # refreshes cancelled before they began
            if not future.done():
                future.cancel()
                self._inflight.pop(key, None)

    async def _load(self, key: str, ttl: float, load: Callable[[], Awaitable[T]]) -> T:
        return await self._begin(key)(ttl, load)  # type: ignore[no-any-return]

    def _begin(self, key: str) -> Callable[[float, Callable[[], Awaitable[Any]]], Awaitable[Any]]:
        """Marks ``key`` as being loaded (callers arriving now wait for this load); returns the load."""
        generation = self.generation(key)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future

        async def run(ttl: float, load: Callable[[], Awaitable[Any]]) -> Any:
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
                self._inflight.pop(key, None)

        return run

    async def many(
        self, prefix: str, keys: Sequence[Any], ttl: float, load: Callable[[list[Any]], Awaitable[Sequence[T]]]
    ) -> list[T]:
        """A batch lookup (for DataLoaders): loads only the missing keys, in one call, in order;
        keys another caller is loading already are waited for, not loaded twice; keys near the end
        of their lifetime are answered from the cache and refreshed in one background call."""
        found: dict[Any, Any] = {}
        missing: list[Any] = []
        due: list[Any] = []
        waiting: dict[Any, asyncio.Future[Any]] = {}
        for k in keys:
            key = f"{prefix}:{k}"
            value = self.get(key)
            if value is not _MISSING:
                found[k] = value
                if self._due(key):
                    due.append(k)
            elif (pending := self._inflight.get(key)) is not None:
                waiting[k] = pending
            else:
                missing.append(k)
        if due:
            refreshing = self._begin_many(prefix, due)

            async def refresh() -> None:
                try:
                    await refreshing(ttl, load)
                except Exception as exc:
                    for k in due:
                        self._entries.pop(f"{prefix}:{k}", None)
                    log.warning("refreshing the cached %s failed: %s", prefix, type(exc).__name__)

            self._background(refresh())
        if missing:
            found.update(await self._begin_many(prefix, missing)(ttl, load))
        for k, pending in waiting.items():
            found[k] = await asyncio.shield(pending)
        return [found[k] for k in keys]

    def _begin_many(
        self, prefix: str, keys: list[Any]
    ) -> Callable[[float, Callable[[list[Any]], Awaitable[Sequence[Any]]]], Awaitable[dict[Any, Any]]]:
        """``_begin`` for a batch: the keys are in flight at once, loaded in one call."""
        loop = asyncio.get_running_loop()
        generations = {k: self.generation(f"{prefix}:{k}") for k in keys}
        futures = {k: loop.create_future() for k in keys}
        for k in keys:
            self._inflight[f"{prefix}:{k}"] = futures[k]

        async def run(ttl: float, load: Callable[[list[Any]], Awaitable[Sequence[Any]]]) -> dict[Any, Any]:
            try:
                values = await load(keys)
            except BaseException as exc:
                for future in futures.values():
                    future.set_exception(exc)
                    future.exception()
                raise
            finally:
                for k in keys:
                    self._inflight.pop(f"{prefix}:{k}", None)
            loaded: dict[Any, Any] = {}
            for k, value in zip(keys, values, strict=True):
                loaded[k] = value
                futures[k].set_result(value)
                self.put(f"{prefix}:{k}", value, ttl, generation=generations[k])
            return loaded

        return run
