"""The message center: stored first, counted cheaply, pushed later by subscriptions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasources.store.db import Database
from datasources.store.models import Notification


def add(session: AsyncSession, *, account_id: int, kind: str, title: str, body: str, at: datetime) -> None:
    session.add(Notification(account_id=account_id, kind=kind, title=title, body=body, created_at=at))


async def unread_counts(db: Database, account_ids: Sequence[int]) -> list[int]:
    async with db.reading() as s:
        rows = (
            await s.execute(
                select(col(Notification.account_id), func.count())
                .where(col(Notification.account_id).in_(account_ids), col(Notification.read_at).is_(None))
                .group_by(col(Notification.account_id))
            )
        ).all()
    counts = {account_id: n for account_id, n in rows}
    return [counts.get(a, 0) for a in account_ids]
