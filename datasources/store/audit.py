"""The audit log: every staff action and every read of unmasked personal data, sealed and chained.

It is the one log that names people, so what a record says (who, what, to whom, the detail, the
request id, when) is JSON sealed with the active AUDIT key (SM4-GCM by default), bound to the
record's sequence number, before it reaches the database. Only what retention and filtering need
stays readable: time, role, action. Records are hash-chained,
``entry_hash = SM3(prev_hash ‖ seq ‖ key_id ‖ sealed)``, so altering, removing or reordering a
record shows at that record or at the next one (``datasources.store.audit_chain`` verifies).

A record is added in the caller's transaction: it lands with the action or not at all. Appending
locks the chain head (SELECT … FOR UPDATE on PostgreSQL; SQLite's write transactions are
serialised already), so concurrent transactions queue for the next sequence number instead of
forking the chain. Record last in a transaction: the head stays locked until it commits.

Retention deletes the oldest records in sequence order and moves the anchor (the last deleted
record) in the same transaction, after checking what it deletes, and leaves an ``audit.purge``
record naming the new anchor: a prefix removed any other way shows.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasources.crypto.primitives import CryptoError, Sealer, digest
from datasources.store.db import Database
from datasources.store.keyring import AUDIT, Keyring
from datasources.store.models import AuditChainHead, AuditEntry, AuditRecord

GENESIS = "0" * 64  # the prev_hash of the first record ever written
HEAD_ID = 1
SYSTEM = "SYSTEM"  # actor role of what the BFF does by itself (retention, sealing the legacy table)
# Audit records are kept at least six months (等保三级); 183 days is the shortest span that is
# six months whatever the calendar.
MIN_RETENTION_DAYS = 183
READ_PERMISSION = "audit.read"


class AuditChainBroken(Exception):
    """The chain does not verify where an operation needs it to (the purge never deletes evidence)."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(f"the audit chain is broken at record {seq}: {reason}")
        self.seq = seq
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One record, opened."""

    seq: int
    at: datetime
    actor_account_id: int | None
    actor_role: str
    action: str
    target_type: str
    target_id: str
    detail: dict[str, Any]
    request_id: str


@dataclass(frozen=True, slots=True)
class Purged:
    records: int
    anchor_seq: int
    anchor_hash: str


def entry_hash(prev_hash: str, seq: int, key_id: str, sealed: str) -> str:
    """SM3 over the fields, separated by a byte none of them can contain (hex, digits, a kid, base64)."""
    return digest("SM3", "\x1f".join((prev_hash, str(seq), key_id, sealed)).encode()).hex()


def _aad(seq: int) -> bytes:
    return f"audit_record:{seq}".encode()


def retention_cutoff(now: datetime, retention_days: int) -> datetime:
    if retention_days < MIN_RETENTION_DAYS:
        raise ValueError(
            f"audit records are kept at least 6 months: a retention of {retention_days} days is below "
            f"the minimum of {MIN_RETENTION_DAYS}"
        )
    return now - timedelta(days=retention_days)


def open_record(keyring: Keyring, row: AuditRecord) -> AuditEvent:
    """Decrypts a record; raises ``CryptoError`` when its key is gone or it was altered or moved."""
    seq = row.seq or 0
    key = keyring.get(row.key_id)
    plain = Sealer(key.algorithm, key.material).open(base64.b64decode(row.sealed), _aad(seq))  # type: ignore[arg-type]
    body = json.loads(plain)
    return AuditEvent(
        seq=seq,
        at=datetime.fromisoformat(body["at"]),
        actor_account_id=body["actor_account_id"],
        actor_role=body["actor_role"],
        action=body["action"],
        target_type=body["target_type"],
        target_id=body["target_id"],
        detail=body["detail"],
        request_id=body["request_id"],
    )


async def locked_head(session: AsyncSession) -> AuditChainHead:
    """The chain head, locked until the caller's transaction ends; created on the very first append
    (a savepoint absorbs the race of two first appends)."""
    query = (
        select(AuditChainHead)
        .where(col(AuditChainHead.id) == HEAD_ID)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    head = (await session.execute(query)).scalar_one_or_none()
    if head is None:
        try:
            async with session.begin_nested():
                session.add(AuditChainHead(id=HEAD_ID))
        except IntegrityError:
            pass  # another transaction created it first: wait for its lock below
        head = (await session.execute(query)).scalar_one()
    return head


class AuditLog:
    """Appends sealed records to the chain and reads them back for the people allowed to."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    async def record(
        self,
        session: AsyncSession,
        *,
        at: datetime,
        actor_account_id: int | None,
        actor_role: str,
        action: str,
        target_type: str,
        target_id: str,
        detail: dict[str, Any] | None = None,
        request_id: str = "",
    ) -> int:
        """Adds the record to the caller's transaction and returns its sequence number."""
        head = await locked_head(session)
        return self._append(
            session,
            head,
            at=at,
            actor_account_id=actor_account_id,
            actor_role=actor_role,
            action=action,
            target_type=target_type,
            target_id=target_id,
            detail=detail or {},
            request_id=request_id,
        )

    def _append(
        self,
        session: AsyncSession,
        head: AuditChainHead,
        *,
        at: datetime,
        actor_account_id: int | None,
        actor_role: str,
        action: str,
        target_type: str,
        target_id: str,
        detail: dict[str, Any],
        request_id: str,
    ) -> int:
        seq = head.last_seq + 1
        body = {
            "at": at.astimezone(UTC).isoformat(),
            "actor_account_id": actor_account_id,
            "actor_role": actor_role,
            "action": action,
            "target_type": target_type,
            "target_id": target_id,
            "detail": detail,
            "request_id": request_id,
        }
        key_id, sealed = self._seal(seq, body)
        prev_hash = head.last_hash or GENESIS
        this_hash = entry_hash(prev_hash, seq, key_id, sealed)
        session.add(
            AuditRecord(
                seq=seq,
                at=at,
                actor_role=actor_role,
                action=action,
                key_id=key_id,
                sealed=sealed,
                prev_hash=prev_hash,
                entry_hash=this_hash,
            )
        )
        head.last_seq, head.last_hash = seq, this_hash
        return seq

    def _seal(self, seq: int, body: dict[str, Any]) -> tuple[str, str]:
        """(key id, base64 of the record's JSON sealed with the active AUDIT key, bound to ``seq``)."""
        plain = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
        key = self.keyring.active(AUDIT)
        sealer = Sealer(key.algorithm, key.material)  # type: ignore[arg-type]
        return key.kid, base64.b64encode(sealer.seal(plain, _aad(seq))).decode()

    async def read(
        self, db: Database, *, since: datetime | None = None, action: str | None = None, limit: int = 50
    ) -> list[AuditEvent]:
        """The latest ``limit`` records (at or after ``since``, of ``action``), oldest first, opened.
        Whoever calls this shows personal data: record an ``audit.read`` first."""
        query = select(AuditRecord).order_by(col(AuditRecord.seq).desc()).limit(limit)
        if since is not None:
            query = query.where(col(AuditRecord.at) >= since)
        if action is not None:
            query = query.where(col(AuditRecord.action) == action)
        async with db.reading() as session:
            rows = (await session.execute(query)).scalars().all()
        events = []
        for row in reversed(rows):
            try:
                events.append(open_record(self.keyring, row))
            except (CryptoError, ValueError, KeyError) as exc:
                raise AuditChainBroken(row.seq or 0, f"it does not open ({exc}); run verify") from exc
        return events

    async def purge(self, db: Database, *, before: datetime, at: datetime, request_id: str = "") -> Purged:
        """Deletes, oldest first, the records older than ``before`` and moves the anchor to the last
        one deleted, in one transaction; refuses to delete records that do not verify, and never
        cuts into the minimum retention. Leaves an ``audit.purge`` record naming the anchor."""
        from datasources.store.audit_chain import ChainCheck  # the checker builds on this module

        if at - before < timedelta(days=MIN_RETENTION_DAYS):
            raise ValueError(
                f"audit records are kept at least 6 months: cannot purge records younger than "
                f"{MIN_RETENTION_DAYS} days (asked to purge before {before.isoformat()})"
            )
        async with db.writing() as session:
            head = await locked_head(session)
            first_kept = (
                await session.execute(
                    select(func.min(AuditRecord.seq)).where(
                        col(AuditRecord.seq) > head.anchor_seq, col(AuditRecord.at) >= before
                    )
                )
            ).scalar_one_or_none()
            through = head.last_seq if first_kept is None else first_kept - 1
            if through <= head.anchor_seq:
                return Purged(0, head.anchor_seq, head.anchor_hash)
            check = ChainCheck(self.keyring, head.anchor_seq, head.anchor_hash)
            doomed = (
                await session.stream_scalars(
                    select(AuditRecord)
                    .where(col(AuditRecord.seq) > head.anchor_seq, col(AuditRecord.seq) <= through)
                    .order_by(col(AuditRecord.seq))
                )
            )
            async for row in doomed:
                check.feed(row)
            check.finish(last_seq=through, last_hash=None)
            if check.problems:
                seq, reason = check.problems[0]
                raise AuditChainBroken(seq, reason)
            result = await session.execute(
                delete(AuditRecord).where(col(AuditRecord.seq) > head.anchor_seq, col(AuditRecord.seq) <= through)
            )
            head.anchor_seq, head.anchor_hash = through, check.last_hash
            purged = Purged(result.rowcount, through, check.last_hash)  # type: ignore[attr-defined]
            self._append(
                session,
                head,
                at=at,
                actor_account_id=None,
                actor_role=SYSTEM,
                action="audit.purge",
                target_type="audit_log",
                target_id=str(through),
                detail={
                    "before": before.astimezone(UTC).isoformat(),
                    "records": purged.records,
                    "anchor_seq": through,
                    "anchor_hash": purged.anchor_hash,
                },
                request_id=request_id,
            )
        return purged

    async def seal_legacy(self, db: Database, *, at: datetime) -> int:
        """Moves the rows of the plain ``audit_log`` table into the chain, sealed, and deletes them,
        in one transaction; returns how many moved."""
        async with db.writing() as session:
            head = await locked_head(session)
            rows = (await session.execute(select(AuditEntry).order_by(col(AuditEntry.id)))).scalars().all()
            if not rows:
                return 0
            for row in rows:
                try:
                    detail = json.loads(row.detail) if row.detail else {}
                except ValueError:
                    detail = {"text": row.detail}
                self._append(
                    session,
                    head,
                    at=row.at,
                    actor_account_id=row.actor_account_id,
                    actor_role=row.actor_role,
                    action=row.action,
                    target_type=row.target_type,
                    target_id=row.target_id,
                    detail=detail if isinstance(detail, dict) else {"value": detail},
                    request_id=row.request_id,
                )
            ids = [row.id or 0 for row in rows]
            for start in range(0, len(ids), 500):
                await session.execute(delete(AuditEntry).where(col(AuditEntry.id).in_(ids[start : start + 500])))
            self._append(
                session,
                head,
                at=at,
                actor_account_id=None,
                actor_role=SYSTEM,
                action="audit.seal_legacy",
                target_type="audit_log",
                target_id="",
                detail={"records": len(rows), "first_id": ids[0], "last_id": ids[-1]},
                request_id="",
            )
        return len(rows)

    async def records_by_key(self, db: Database) -> dict[str, int]:
        """How many records each key seals: an audit key is retired only once none are left."""
        async with db.reading() as session:
            rows = (
                await session.execute(
                    select(col(AuditRecord.key_id), func.count()).group_by(col(AuditRecord.key_id))
                )
            ).all()
        return {kid: count for kid, count in rows}
