"""Bearer sessions as every request meets them: cached for a few seconds, revoked everywhere at once.

The database stays the truth: a cached session is used only while it is unexpired and its last use
is recorded (within a minute); otherwise the database is asked, which also records the use. A busy
session is asked about in the background a little before that, once, so its requests never wait. Logout
invalidates the cached copy in every BFF process before it answers.
"""

from __future__ import annotations

from collections.abc import Awaitable

from resolvers import cache_keys, identity
from resolvers.deps import Deps
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
    await deps.invalidate(cache_keys.session(token_hash))
