"""The read cache: time limits, generations against stale writes, and invalidation across processes."""

from __future__ import annotations

import asyncio

from datasources.cache import Cache
from realtime.broker import Broker
from realtime.invalidations import Invalidations


class Ticking:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_value_lives_until_its_time_limit() -> None:
    tick = Ticking()
    cache = Cache(monotonic=tick)
    cache.put("k", 1, 5, generation=cache.generation("k"))
    tick.now += 4.9
    assert cache.get("k") == 1
    tick.now += 0.2
    assert cache.get("k") is Cache.MISSING


async def test_a_load_that_overlaps_an_invalidation_is_not_stored() -> None:
    cache = Cache()
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_old_read() -> str:
        started.set()
        await release.wait()
        return "before the write"

    reading = asyncio.create_task(cache.through("patients:1", 60, slow_old_read))
    await started.wait()
    cache.invalidate(["patients:1"])  # the write commits while the read is in flight
    release.set()
    assert await reading == "before the write"  # that caller gets what it read...
    assert cache.get("patients:1") is Cache.MISSING  # ...but nobody after it does


async def test_a_batch_loads_only_what_is_missing_in_one_call() -> None:
    cache = Cache()
    calls: list[list[int]] = []

    async def load(missing: list[int]) -> list[str]:
        calls.append(missing)
        return [f"doctor {k}" for k in missing]

    assert await cache.many("doctor", [1, 2], 60, load) == ["doctor 1", "doctor 2"]
    assert await cache.many("doctor", [2, 3, 1], 60, load) == ["doctor 2", "doctor 3", "doctor 1"]
    assert calls == [[1, 2], [3]]


def test_the_oldest_entries_give_way_when_full() -> None:
    cache = Cache(max_entries=2)
    for key in ("a", "b", "c"):
        cache.put(key, key, 60, generation=0)
    assert cache.get("a") is Cache.MISSING and cache.get("c") == "c"


async def test_an_invalidation_reaches_every_process_sharing_the_broker(broker: Broker) -> None:
    here, there = Cache(), Cache()
    ours, theirs = Invalidations(here, broker), Invalidations(there, broker)
    await ours.start()
    await theirs.start()
    try:
        for cache in (here, there):
            cache.put("session:abc", "alive", 60, generation=0)
        await ours.invalidate("session:abc")
        for _ in range(100):
            if there.get("session:abc") is Cache.MISSING:
                break
            await asyncio.sleep(0.01)
        assert here.get("session:abc") is Cache.MISSING
        assert there.get("session:abc") is Cache.MISSING
    finally:
        await ours.close()
        await theirs.close()


async def test_callers_missing_the_same_key_at_once_share_one_load() -> None:
    cache = Cache()
    loads = 0

    async def load() -> str:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.01)
        return "queue state"

    results = await asyncio.gather(*(cache.through("queue:7", 3, load) for _ in range(20)))
    assert results == ["queue state"] * 20 and loads == 1


async def test_batches_that_overlap_load_each_key_once() -> None:
    cache = Cache()
    calls: list[list[int]] = []

    async def load(missing: list[int]) -> list[int]:
        calls.append(missing)
        await asyncio.sleep(0.01)
        return [k * 10 for k in missing]

    first, second = await asyncio.gather(cache.many("d", [1, 2], 60, load), cache.many("d", [2, 3], 60, load))
    assert (first, second) == ([10, 20], [20, 30])
    assert calls == [[1, 2], [3]]


async def test_a_failed_shared_load_fails_every_waiter_and_is_not_cached() -> None:
    cache = Cache()

    async def broken() -> str:
        await asyncio.sleep(0.01)
        raise ConnectionError("HIS down")

    results = await asyncio.gather(*(cache.through("k", 3, broken) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert cache.get("k") is Cache.MISSING


async def test_the_invalidation_record_stays_bounded_and_pruning_never_lets_a_stale_load_in() -> None:
    cache = Cache(max_entries=10)
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_old_read() -> str:
        started.set()
        await release.wait()
        return "stale"

    reading = asyncio.create_task(cache.through("patients:1", 60, slow_old_read))
    await started.wait()
    cache.invalidate([f"session:{n}" for n in range(25)])  # many logouts: the record is pruned
    assert len(cache._generations) <= 10
    release.set()
    await reading
    assert cache.get("patients:1") is Cache.MISSING


async def settle(cache: Cache) -> None:
    """Lets the background refreshes the cache started run to their end."""
    while cache._refreshing:
        await asyncio.gather(*cache._refreshing)


async def test_a_busy_value_is_refreshed_ahead_and_never_waited_for() -> None:
    tick = Ticking()
    cache = Cache(monotonic=tick)
    loads: list[float] = []

    async def load() -> float:
        loads.append(tick.now)
        return tick.now

    assert await cache.through("queue:7", 4, load) == 1000.0
    tick.now += 2.9  # within the first three quarters of the lifetime: no refresh
    assert await cache.through("queue:7", 4, load) == 1000.0
    await settle(cache)
    assert loads == [1000.0]
    tick.now += 0.2  # the last quarter: answered from the cache, one refresh in the background
    assert await cache.through("queue:7", 4, load) == 1000.0
    assert await cache.through("queue:7", 4, load) == 1000.0
    await settle(cache)
    assert loads == [1000.0, 1003.1]
    tick.now += 3.5  # the first value would have expired by now; the refreshed one has not
    assert await cache.through("queue:7", 4, load) == 1003.1


async def test_a_value_is_never_older_than_its_lifetime_even_when_refreshes_stall() -> None:
    tick = Ticking()
    cache = Cache(monotonic=tick)
    release = asyncio.Event()
    answers = iter(["first", "second"])

    async def load() -> str:
        value = next(answers)
        if value == "second":
            await release.wait()
        return value

    assert await cache.through("k", 4, load) == "first"
    tick.now += 3.5
    assert await cache.through("k", 4, load) == "first"  # starts the (stalled) refresh
    tick.now += 1.0  # expired: callers now wait for that one refresh instead of using the old value
    waiting = asyncio.create_task(cache.through("k", 4, load))
    await asyncio.sleep(0)
    assert not waiting.done()
    release.set()
    assert await waiting == "second"


async def test_a_failed_refresh_drops_the_value_so_the_next_read_meets_the_failure() -> None:
    tick = Ticking()
    cache = Cache(monotonic=tick)
    healthy = True

    async def load() -> str:
        if not healthy:
            raise ConnectionError("HIS is down")
        return "page"

    assert await cache.through("registrations:1", 4, load) == "page"
    healthy = False
    tick.now += 3.5
    assert await cache.through("registrations:1", 4, load) == "page"
    await settle(cache)
    assert cache.get("registrations:1") is Cache.MISSING
    try:
        await cache.through("registrations:1", 4, load)
    except ConnectionError:
        pass
    else:
        raise AssertionError("the outage was hidden behind a refreshed-away value")


async def test_an_unusable_value_is_loaded_again_once_for_every_caller() -> None:
    cache = Cache()
    loads = 0

    async def load() -> dict[str, bool]:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0)
        return {"usable": loads > 1}

    assert (await cache.through("session:x", 30, load))["usable"] is False
    results = await asyncio.gather(
        *(cache.through("session:x", 30, load, usable=lambda v: v["usable"]) for _ in range(10))
    )
    assert all(r["usable"] for r in results) and loads == 2


async def test_a_batch_refreshes_its_ageing_keys_in_one_background_call() -> None:
    tick = Ticking()
    cache = Cache(monotonic=tick)
    calls: list[list[int]] = []

    async def load(missing: list[int]) -> list[str]:
        calls.append(missing)
        return [f"queue {k} at {tick.now}" for k in missing]

    await cache.many("queue", [1, 2], 4, load)
    tick.now += 2.0
    await cache.many("queue", [3], 4, load)
    tick.now += 1.5  # 1 and 2 are in their last quarter, 3 is not
    assert await cache.many("queue", [1, 2, 3], 4, load) == [
        "queue 1 at 1000.0",
        "queue 2 at 1000.0",
        "queue 3 at 1002.0",
    ]
    await settle(cache)
    assert calls == [[1, 2], [3], [1, 2]]
    assert await cache.many("queue", [1, 2], 4, load) == ["queue 1 at 1003.5", "queue 2 at 1003.5"]
