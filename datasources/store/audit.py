"""The audit log: every staff action and every read of unmasked personal data."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from datasources.store.models import AuditEntry


def record(
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
) -> None:
    """Adds the entry to the caller's transaction: it lands with the action or not at all."""
    session.add(
        AuditEntry(
            at=at,
            actor_account_id=actor_account_id,
            actor_role=actor_role,
            action=action,
            target_type=target_type,
            target_id=target_id,
            detail=json.dumps(detail or {}, ensure_ascii=False, sort_keys=True),
            request_id=request_id,
        )
    )
