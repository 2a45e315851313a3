"""Idempotency keys: a money-moving request runs once, however often the front end retries it.

The caller (a mini-program whose answer was lost, a kiosk pressing "pay" twice) sends the same
key again; the first request's result comes back and nothing moves twice. Concurrent duplicates
race for one row (primary key: account, operation, key): the loser waits for the winner's result.
A key reused for another request (another amount, another order) is refused, never silently
answered with the first result. When the first request fails unexpectedly its claim is released,
so a retry runs again; the money flows themselves stay safe because their external calls carry
identifiers derived from the key (out_trade_no, msgid), which the channels deduplicate.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from datasources.clock import Clock
from datasources.store.db import Database
from datasources.store.models import IdempotencyRecord
from resolvers.errors import DomainError, InvalidInput

IN_PROGRESS = "IN_PROGRESS"
DONE = "DONE"
KEEP_FOR = timedelta(days=2)
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


class IdempotencyKeyReused(DomainError):
    code = "IDEMPOTENCY_KEY_REUSED"


class RequestInProgress(DomainError):
    code = "REQUEST_IN_PROGRESS"


def fingerprint(request: Any) -> str:
    """SHA-256 of the request's input, key order and spacing aside."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str) -> str:
    if not 8 <= len(key) <= 64 or not set(key) <= _KEY_CHARS:
        raise InvalidInput(
            "idempotencyKey", "An idempotency key is 8-64 characters (letters, digits, - _ . :), e.g. a UUID."
        )
    return key


async def once(
    db: Database,
    clock: Clock,
    *,
    account_id: int,
    scope: str,
    key: str,
    request: Any,
    run: Callable[[], Awaitable[Any]],
    wait_s: float = 15.0,
) -> Any:
    """``run()`` once per (account, scope, key); its JSON-able result is stored and replayed."""
    check_key(key)
    digest = fingerprint(request)
    now = clock.now()
    try:
        async with db.writing() as s:
            s.add(
                IdempotencyRecord(
                    account_id=account_id,
                    scope=scope,
                    key=key,
                    fingerprint=digest,
                    state=IN_PROGRESS,
                    created_at=now,
                    updated_at=now,
                    expires_at=now + KEEP_FOR,
                )
            )
    except IntegrityError:
        return await _replay(db, account_id=account_id, scope=scope, key=key, digest=digest, wait_s=wait_s)
    try:
        result = await run()
    except BaseException:
        async with db.writing() as s:
            await s.execute(delete(IdempotencyRecord).where(*_this(account_id, scope, key)))
        raise
    async with db.writing() as s:
        await s.execute(
            update(IdempotencyRecord)
            .where(*_this(account_id, scope, key))
            .values(state=DONE, result=json.dumps(result, ensure_ascii=False), updated_at=clock.now())
        )
    return result


async def _replay(db: Database, *, account_id: int, scope: str, key: str, digest: str, wait_s: float) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    delay = 0.02
    while True:
        async with db.reading() as s:
            row = await s.get(IdempotencyRecord, (account_id, scope, key))
        if row is None:  # the first one failed and released its claim: the caller may retry
            raise RequestInProgress("The first request with this key failed; send it again.")
        if row.fingerprint != digest:
            raise IdempotencyKeyReused(
                "This idempotency key was used for a different request; use a new key for a new payment."
            )
        if row.state == DONE:
            return json.loads(row.result or "null")
        if loop.time() >= deadline:
            raise RequestInProgress("A request with this key is still being processed; ask again shortly.")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.25)


def _this(account_id: int, scope: str, key: str) -> tuple[Any, ...]:
    return (
        col(IdempotencyRecord.account_id) == account_id,
        col(IdempotencyRecord.scope) == scope,
        col(IdempotencyRecord.key) == key,
    )


async def purge_expired(db: Database, clock: Clock) -> int:
    async with db.writing() as s:
        result = await s.execute(delete(IdempotencyRecord).where(col(IdempotencyRecord.expires_at) < clock.now()))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
