"""Kiosks and bedside insurance terminals act as themselves: a signed request from an app of kind
DEVICE is that device, with no login and no patient behind it. Each device has an account (role
DEVICE), made on its first request, so what it does is keyed and audited like any other caller's
(idempotency keys, payment orders, the audit log). The patient proves who they are per
transaction (resolvers/kiosk.py)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from datasources.store.models import Account, ChannelIdentity
from resolvers.deps import Deps
from resolvers.identity import DEVICE, Viewer

CHANNEL = "DEVICE"  # the channel identity that ties a device's app id to its account
SESSION_CHANNEL = "KIOSK"


async def viewer(deps: Deps, *, app_id: str, name: str) -> Viewer:
    account_id = await _account_of(deps, app_id, name)
    return Viewer(account_id=account_id, role=DEVICE, display_name=name or app_id, channel=SESSION_CHANNEL)


async def _account_of(deps: Deps, app_id: str, name: str) -> int:
    async def load() -> int | None:
        async with deps.db.reading() as s:
            return (
                await s.execute(
                    select(col(ChannelIdentity.account_id)).where(
                        col(ChannelIdentity.channel) == CHANNEL, col(ChannelIdentity.subject) == app_id
                    )
                )
            ).scalar_one_or_none()

    found = await deps.cache.through(f"device-account:{app_id}", 3600.0, load, usable=lambda v: v is not None)
    if found is not None:
        return int(found)
    now = deps.clock.now()
    try:
        async with deps.db.writing() as s:
            account = Account(role=DEVICE, display_name=(name or app_id)[:64], created_at=now)
            s.add(account)
            await s.flush()
            s.add(ChannelIdentity(account_id=account.id or 0, channel=CHANNEL, subject=app_id, created_at=now))
    except IntegrityError:
        pass  # another process made it first
    made = await load()
    assert made is not None
    return made
