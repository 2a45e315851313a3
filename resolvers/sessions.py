"""Bearer sessions as every request meets them: cached for a few seconds, revoked everywhere at once.

The database stays the truth: a cached session is used only while it is unexpired and its last use
is recorded (within a minute); otherwise the database is asked, which also records the use. A busy
session is asked about in the background a little before that, once, so its requests never wait. Logout
invalidates the cached copy in every BFF process before it answers, together with the personal data
cached for the account (its patients, their cards, registration lists, unread counts): nothing of the
person stays in memory after they leave (等保三级: 剩余信息保护).
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime

from sqlalchemy import select
from sqlmodel import col

from datasources.store.models import Patient
from resolvers import cache_keys, identity, passwords
from resolvers.deps import Deps
from resolvers.errors import NotAuthenticated
from resolvers.identity import ActiveSession, Viewer


async def viewer(deps: Deps, token: str) -> Viewer:
    """Raises ``NotAuthenticated`` with the reason when the token cannot be used."""
    now = deps.clock.now()

    def load() -> Awaitable[ActiveSession]:
        return identity.active_session(deps.db, deps.clock, deps.sessions, token)

    found: ActiveSession = await deps.cache.through(
        cache_keys.session(identity.token_hash(token)),
        cache_keys.SESSION_TTL,
        load,
        usable=lambda hit: isinstance(hit, ActiveSession) and hit.usable_at(now, deps.sessions),
        due=lambda hit: hit.due_at(now, deps.sessions),
    )
    return found.viewer


async def log_out(deps: Deps, who: Viewer) -> None:
    token_hash = await identity.logout(deps.db, deps.clock, who)
    personal: list[str] = []
    if who.account_id is not None:
        async with deps.db.reading() as s:
            patient_ids = (
                (await s.execute(select(col(Patient.id)).where(col(Patient.account_id) == who.account_id)))
                .scalars()
                .all()
            )
        personal = cache_keys.personal(who.account_id, [p for p in patient_ids if p is not None])
    await deps.invalidate(cache_keys.session(token_hash), *personal)


async def change_password(deps: Deps, who: Viewer, *, current: str, new: str, request_id: str = "") -> datetime:
    """The viewer's own password; every other session of the account ends, in every process."""
    if who.account_id is None:
        raise NotAuthenticated("Log in first.")
    change = await passwords.change_password(
        deps.db,
        deps.audit,
        deps.clock,
        deps.sessions,
        account_id=who.account_id,
        session_id=who.session_id,
        current=current,
        new=new,
        request_id=request_id,
    )
    if change.revoked:
        await deps.invalidate(*(cache_keys.session(h) for h in change.revoked))
    return change.changed_at
