"""A money-moving request runs once per idempotency key, however many copies arrive together."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from datasources.clock import FixedClock
from datasources.store.db import Database
from resolvers import idempotency
from resolvers.errors import InvalidInput
from resolvers.idempotency import IdempotencyKeyReused, RequestInProgress

_keys = itertools.count(1)


def new_key() -> str:
    return f"key-{next(_keys):08d}"


async def test_twenty_concurrent_duplicates_charge_once_and_all_get_the_first_result(
    db: Database, clock: FixedClock
) -> None:
    charges: list[int] = []

    async def charge() -> dict[str, object]:
        charges.append(1)
        await asyncio.sleep(0.05)  # the channel call, while the duplicates arrive
        return {"paymentId": f"pay-{len(charges)}", "amountFen": 5000}

    key = new_key()
    request = {"registrationId": "42", "amountFen": 5000}
    results = await asyncio.gather(
        *(
            idempotency.once(db, clock, account_id=7, scope="payRegistration", key=key, request=request, run=charge)
            for _ in range(20)
        )
    )
    assert len(charges) == 1
    assert results == [{"paymentId": "pay-1", "amountFen": 5000}] * 20
    again = await idempotency.once(
        db, clock, account_id=7, scope="payRegistration", key=key, request=dict(reversed(request.items())), run=charge
    )
    assert again == results[0] and len(charges) == 1  # a later retry too; key order does not matter


async def test_a_key_reused_for_another_request_is_refused(db: Database, clock: FixedClock) -> None:
    key = new_key()

    async def pay() -> str:
        return "paid"

    await idempotency.once(db, clock, account_id=1, scope="pay", key=key, request={"amountFen": 100}, run=pay)
    with pytest.raises(IdempotencyKeyReused):
        await idempotency.once(db, clock, account_id=1, scope="pay", key=key, request={"amountFen": 200}, run=pay)
    # Another account or another operation with the same key is another request.
    assert await idempotency.once(db, clock, account_id=2, scope="pay", key=key, request={"amountFen": 200}, run=pay)
    assert await idempotency.once(db, clock, account_id=1, scope="refund", key=key, request={}, run=pay)


async def test_a_failed_first_request_releases_its_key(db: Database, clock: FixedClock) -> None:
    key = new_key()
    attempts: list[int] = []

    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("channel timed out")
        return "paid"

    with pytest.raises(RuntimeError):
        await idempotency.once(db, clock, account_id=1, scope="pay", key=key, request={}, run=flaky)
    assert await idempotency.once(db, clock, account_id=1, scope="pay", key=key, request={}, run=flaky) == "paid"
    assert len(attempts) == 2


async def test_a_duplicate_waits_for_the_first_only_so_long(db: Database, clock: FixedClock) -> None:
    key = new_key()
    started = asyncio.Event()

    async def slow() -> str:
        started.set()
        await asyncio.sleep(1)
        return "done"

    first = asyncio.create_task(idempotency.once(db, clock, account_id=1, scope="pay", key=key, request={}, run=slow))
    await started.wait()
    with pytest.raises(RequestInProgress):
        await idempotency.once(db, clock, account_id=1, scope="pay", key=key, request={}, run=slow, wait_s=0.1)
    assert await first == "done"


@pytest.mark.parametrize("key", ["short", "x" * 65, "含中文的键值-0001", "spaces are bad"])
async def test_keys_are_checked(db: Database, clock: FixedClock, key: str) -> None:
    async def never() -> None:
        raise AssertionError("must not run")

    with pytest.raises(InvalidInput):
        await idempotency.once(db, clock, account_id=1, scope="pay", key=key, request={}, run=never)


async def test_expired_records_are_purged(db: Database, clock: FixedClock) -> None:
    async def pay() -> str:
        return "paid"

    await idempotency.once(db, clock, account_id=1, scope="pay", key=new_key(), request={}, run=pay)
    clock.advance(days=3)
    assert await idempotency.purge_expired(db, clock) == 1
