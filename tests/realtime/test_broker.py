"""The broker facade: the same behaviour from the memory and the Redis backends."""

from __future__ import annotations

import asyncio

import pytest

from realtime.broker import Broker, MemoryBroker, broker_from_url
from tests.conftest import REDIS_URL, open_broker


async def _next(events, wait_s: float = 5.0):  # type: ignore[no-untyped-def]
    return await asyncio.wait_for(anext(events), wait_s)


async def test_a_subscriber_receives_what_is_published_after_it_subscribed_in_order(broker: Broker) -> None:
    async with broker.subscribe("queue:1") as events:
        await asyncio.sleep(0.05)  # Redis: let the SUBSCRIBE reach the server
        for n in range(3):
            await broker.publish("queue:1", {"calledNumber": n})
        received = [await _next(events) for _ in range(3)]
    assert [e["calledNumber"] for e in received] == [0, 1, 2]


async def test_events_carry_an_id_and_a_timestamp(broker: Broker) -> None:
    async with broker.subscribe("queue:2") as events:
        await asyncio.sleep(0.05)
        sent = await broker.publish("queue:2", {"calledNumber": 7})
        got = await _next(events)
    assert got == sent
    assert len(got["id"]) == 32 and got["at"].endswith("+00:00")


async def test_topics_are_separate(broker: Broker) -> None:
    async with broker.subscribe("queue:a") as a_events:
        await asyncio.sleep(0.05)
        await broker.publish("queue:b", {"n": 1})
        await broker.publish("queue:a", {"n": 2})
        assert (await _next(a_events))["n"] == 2


async def test_every_subscriber_of_a_topic_gets_every_event(broker: Broker) -> None:
    async with broker.subscribe("queue:3") as first, broker.subscribe("queue:3") as second:
        await asyncio.sleep(0.05)
        await broker.publish("queue:3", {"n": 1})
        assert (await _next(first))["n"] == 1
        assert (await _next(second))["n"] == 1


async def test_leaving_the_block_unsubscribes() -> None:
    broker = MemoryBroker()
    async with broker.subscribe("queue:4"):
        assert "queue:4" in broker._fanout.subscribers
    assert "queue:4" not in broker._fanout.subscribers


async def test_two_redis_brokers_deliver_each_others_events() -> None:
    if not REDIS_URL:
        pytest.skip("REDIS_URL not set")
    a, b = await open_broker("redis", "test-cross"), await open_broker("redis", "test-cross")
    try:
        async with b.subscribe("queue:cross") as events:
            await asyncio.sleep(0.05)
            await a.publish("queue:cross", {"calledNumber": 12})
            assert (await _next(events))["calledNumber"] == 12
    finally:
        await a.close()
        await b.close()


async def test_deployments_sharing_a_redis_do_not_hear_each_other() -> None:
    if not REDIS_URL:
        pytest.skip("REDIS_URL not set")
    ours, theirs = await open_broker("redis", "hospital-a"), await open_broker("redis", "hospital-b")
    try:
        async with ours.subscribe("queue:9") as events:
            await asyncio.sleep(0.05)
            await theirs.publish("queue:9", {"from": "b"})
            await ours.publish("queue:9", {"from": "a"})
            assert (await _next(events))["from"] == "a"
    finally:
        await ours.close()
        await theirs.close()


def test_the_backend_is_chosen_by_url() -> None:
    assert isinstance(broker_from_url(None), MemoryBroker)
    assert isinstance(broker_from_url("memory://"), MemoryBroker)
    with pytest.raises(ValueError, match="unsupported"):
        broker_from_url("kafka://x")
