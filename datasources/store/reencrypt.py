"""The re-encryption job: moves every encrypted column to the active field key, in batches, while
the service runs.

Each batch is its own short transaction, and each row is rewritten only if it still holds the
value that was read (compare-and-set), so a concurrent update is never overwritten: a row written
meanwhile was sealed with the active key anyway. Run it after a rotation or an algorithm switch;
it is idempotent and can be stopped and started again.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Table, and_, func, select, update
from sqlmodel import col as column

from datasources.store.db import Database
from datasources.store.fieldcrypt import PREFIX, FieldCipher
from datasources.store.models import AuditRecord, MedicalCardBinding, Patient, StaffCredential


@dataclass(frozen=True, slots=True)
class EncryptedColumn:
    table: Table
    key: Column[Any]
    column: Column[Any]
    context: str

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column.name}"


def _column(model: Any, key: str, column: str, context: str) -> EncryptedColumn:
    table: Table = model.__table__
    return EncryptedColumn(table, table.c[key], table.c[column], context)


# Every column sealed with the field key, and the context it is bound to.
ENCRYPTED_COLUMNS: tuple[EncryptedColumn, ...] = (
    _column(Patient, "id", "document_number_enc", "patient.document_number"),
    _column(Patient, "id", "phone_enc", "patient.phone"),
    _column(MedicalCardBinding, "id", "card_no_enc", "card.card_no"),
    _column(StaffCredential, "account_id", "totp_secret_enc", "staff.totp_secret"),
)


@dataclass(slots=True)
class ReencryptionReport:
    rewritten: Counter[str] = field(default_factory=Counter)
    skipped_concurrent: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.rewritten.values())


async def reencrypt(
    db: Database,
    cipher: FieldCipher,
    *,
    batch_size: int = 500,
    pause_s: float = 0.0,
    columns: tuple[EncryptedColumn, ...] = ENCRYPTED_COLUMNS,
) -> ReencryptionReport:
    """Rewrites every value not sealed with the active key; ``pause_s`` between batches leaves the
    database to the service's own writes (SQLite has one writer)."""
    report = ReencryptionReport()
    for col in columns:
        after: Any = None
        while True:
            async with db.reading() as session:
                query = select(col.key, col.column).where(col.column.is_not(None)).order_by(col.key).limit(batch_size)
                if after is not None:
                    query = query.where(col.key > after)
                rows = (await session.execute(query)).all()
            if not rows:
                break
            after = rows[-1][0]
            stale = [(key, value) for key, value in rows if value and not cipher.is_current(value)]
            if stale:
                async with db.writing() as session:
                    for key, value in stale:
                        fresh = cipher.encrypt(cipher.decrypt(value, context=col.context), context=col.context)
                        unchanged = and_(col.key == key, col.column == value)
                        result = await session.execute(update(col.table).where(unchanged).values({col.column: fresh}))
                        if result.rowcount:  # type: ignore[attr-defined]
                            report.rewritten[col.name] += 1
                        else:
                            report.skipped_concurrent[col.name] += 1
            if pause_s:
                await asyncio.sleep(pause_s)
    return report


async def values_by_key(db: Database, columns: tuple[EncryptedColumn, ...] = ENCRYPTED_COLUMNS) -> Counter[str]:
    """How many stored values each key id seals: a key with none left can be retired. Audit records
    count too: they are never re-encrypted (that would break their hash chain), so an old audit key
    stays until the retention purge has removed the last record it sealed."""
    counts: Counter[str] = Counter()
    async with db.reading() as session:
        key_id = column(AuditRecord.key_id)
        counts.update({kid: n for kid, n in (await session.execute(select(key_id, func.count()).group_by(key_id)))})
        for col in columns:
            values = (await session.execute(select(col.column).where(col.column.is_not(None)))).scalars()
            for value in values:
                if value.startswith(f"{PREFIX}:"):
                    counts[value.split(":", 2)[1]] += 1
    return counts
