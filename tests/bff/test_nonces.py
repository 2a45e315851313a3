"""Nonces are remembered exactly as long as their timestamp is acceptable, and never forgotten early."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from bff.security.nonces import MemoryNonces, NonceStoreFull, RedisNonces
from tests.conftest import REDIS_URL


async def test_a_nonce_is_refused_until_it_expires_then_accepted_again() -> None:
    nonces = MemoryNonces()
    assert await nonces.claim("app", "n-1", 1)
    assert not await nonces.claim("app", "n-1", 1)
    assert await nonces.claim("other-app", "n-1", 1)  # per app
    await asyncio.sleep(1.05)
    assert await nonces.claim("app", "n-1", 1)


async def test_a_full_store_refuses_instead_of_forgetting_a_live_nonce() -> None:
    nonces = MemoryNonces(limit=3)
    for n in range(3):
        assert await nonces.claim("app", f"n-{n}", 60)
    with pytest.raises(NonceStoreFull):
        await nonces.claim("app", "n-3", 60)
    assert not await nonces.claim("app", "n-0", 60)  # still remembered


async def test_expired_nonces_make_room_without_a_sweep() -> None:
    nonces = MemoryNonces(limit=2)
    assert await nonces.claim("app", "a", 1) and await nonces.claim("app", "b", 1)
    await asyncio.sleep(1.05)
    assert await nonces.claim("app", "c", 60) and await nonces.claim("app", "d", 60)


@pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL (TEST_REQUIRE_SERVICES=1 makes it required)")
async def test_replicas_share_nonces_through_redis() -> None:
    namespace = f"test-{secrets.token_hex(4)}"
    a, b = RedisNonces(REDIS_URL, namespace=namespace), RedisNonces(REDIS_URL, namespace=namespace)
    try:
        assert await a.claim("app", "shared", 5)
        assert not await b.claim("app", "shared", 5)
    finally:
        await a.close()
        await b.close()
