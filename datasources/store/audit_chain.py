"""Verifying the audit chain: every hash recomputed, every link and sequence number checked, every
record opened, from the anchor to the head, in one consistent snapshot.

A problem is reported at the record it concerns: an altered record at itself (its hash no longer
matches), a removed one at its own missing number, a record rewritten together with its own hash at
itself too, because the next record still holds the hash it had (or the chain head does, for the
last record).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasources.crypto.primitives import CryptoError
from datasources.store.audit import GENESIS, HEAD_ID, entry_hash, open_record
from datasources.store.db import Database
from datasources.store.keyring import Keyring
from datasources.store.models import AuditChainHead, AuditRecord


@dataclass(frozen=True, slots=True)
class AuditVerification:
    records: int  # records walked, from the anchor on
    opened: int  # of which opened with their key
    anchor_seq: int
    last_seq: int  # as the chain head says
    problems: tuple[tuple[int, str], ...]  # (seq, reason), in sequence order

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def broken_seq(self) -> int | None:
        return self.problems[0][0] if self.problems else None

    @property
    def reason(self) -> str | None:
        return self.problems[0][1] if self.problems else None


class ChainCheck:
    """Fed the records after the anchor in sequence order; collects the problems."""

    def __init__(self, keyring: Keyring, anchor_seq: int, anchor_hash: str) -> None:
        self.keyring = keyring
        self.anchor_seq = anchor_seq
        self.expected = anchor_seq + 1
        self.last_hash = anchor_hash or GENESIS
        self.last_seq = anchor_seq
        self.previous: int | None = None
        self.records = self.opened = 0
        self.last_purge: dict[str, Any] | None = None
        self._problems: dict[int, str] = {}

    @property
    def problems(self) -> tuple[tuple[int, str], ...]:
        return tuple(sorted(self._problems.items()))

    def _problem(self, seq: int, reason: str) -> None:
        self._problems.setdefault(seq, reason)

    def feed(self, row: AuditRecord) -> None:
        seq = row.seq or 0
        self.records += 1
        consistent = entry_hash(row.prev_hash, seq, row.key_id, row.sealed) == row.entry_hash
        if seq != self.expected:
            gap = f"record {self.expected} is"
            if seq - 1 > self.expected:
                gap = f"records {self.expected} to {seq - 1} are"
            self._problem(self.expected, f"{gap} missing (the next one found is {seq})")
        elif row.prev_hash != self.last_hash:
            if self.previous is None:
                self._problem(
                    seq,
                    f"it does not chain to the anchor (record {self.anchor_seq}): records before it were "
                    "removed or the anchor was moved",
                )
            elif consistent:
                self._problem(
                    self.previous, f"it was rewritten: record {seq} chained to another hash than the one it holds now"
                )
        if not consistent:
            self._problem(seq, "its hash does not match its content: the record was altered")
        self._open(row, seq)
        self.expected = seq + 1
        self.previous = self.last_seq = seq
        self.last_hash = row.entry_hash

    def _open(self, row: AuditRecord, seq: int) -> None:
        try:
            event = open_record(self.keyring, row)
        except CryptoError as exc:
            self._problem(seq, f"it does not open with key {row.key_id}: {exc}")
            return
        except (ValueError, KeyError, TypeError) as exc:
            self._problem(seq, f"its sealed content is malformed ({type(exc).__name__})")
            return
        self.opened += 1
        differing = [
            name
            for name, readable, sealed in (
                ("at", row.at, event.at),
                ("actor_role", row.actor_role, event.actor_role),
                ("action", row.action, event.action),
            )
            if readable != sealed
        ]
        if differing:
            self._problem(seq, f"its readable columns ({', '.join(differing)}) differ from what is sealed")
        if event.action == "audit.purge":
            self.last_purge = event.detail

    def finish(self, *, last_seq: int, last_hash: str | None) -> None:
        """Compares the end of the walk with the chain head (``last_hash`` None: not checked)."""
        if last_seq > self.last_seq:
            gap = f"records {self.expected} to {last_seq} are" if last_seq > self.expected else f"record {last_seq} is"
            self._problem(self.expected, f"{gap} missing: the chain head says the last record is {last_seq}")
        elif self.last_seq > last_seq:
            self._problem(last_seq + 1, f"records after {last_seq}, the chain head's last, were added outside the log")
        elif last_hash is not None and self.records and last_hash != self.last_hash:
            self._problem(self.last_seq, "it was rewritten: the chain head holds another hash for the last record")

    def check_anchor(self, anchor_hash: str) -> None:
        """An anchor is only ever moved by a purge, which leaves a sealed record naming it."""
        if self.anchor_seq == 0:
            return
        purge = self.last_purge or {}
        if purge.get("anchor_seq") != self.anchor_seq or purge.get("anchor_hash") != anchor_hash:
            self._problem(
                self.anchor_seq + 1,
                f"the anchor (record {self.anchor_seq}) was not set by a purge: no sealed audit.purge record names it",
            )


@asynccontextmanager
async def _snapshot(db: Database) -> AsyncIterator[AsyncSession]:
    """One read transaction (REPEATABLE READ on PostgreSQL, a deferred transaction on SQLite's WAL):
    appends and purges running meanwhile are not half seen."""
    async with db.engine.connect() as conn:
        if not db.is_sqlite:
            await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin(), AsyncSession(bind=conn) as session:
            yield session


async def verify(db: Database, keyring: Keyring) -> AuditVerification:
    """Walks the chain from the anchor to the head and reports what does not hold."""
    async with _snapshot(db) as session:
        head = (
            await session.execute(select(AuditChainHead).where(col(AuditChainHead.id) == HEAD_ID))
        ).scalar_one_or_none() or AuditChainHead(id=HEAD_ID)
        check = ChainCheck(keyring, head.anchor_seq, head.anchor_hash)
        rows = await session.stream_scalars(
            select(AuditRecord).where(col(AuditRecord.seq) > head.anchor_seq).order_by(col(AuditRecord.seq))
        )
        async for row in rows:
            check.feed(row)
        check.finish(last_seq=head.last_seq, last_hash=head.last_hash)
        check.check_anchor(head.anchor_hash)
    return AuditVerification(
        records=check.records,
        opened=check.opened,
        anchor_seq=head.anchor_seq,
        last_seq=head.last_seq,
        problems=check.problems,
    )
