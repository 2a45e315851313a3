"""Bearer sessions as every request meets them: cached for a few seconds, revoked everywhere at once.

The database stays the truth: a cached session is used only while it is unexpired and its last use
is recorded (within a minute); otherwise the database is asked, which also records the use. Logout
invalidates the cached copy in every BFF process before it answers.
"""

from __future__ import annotations

from resolvers import cache_keys, identity
from resolvers.deps import Deps
from resolvers.identity import ActiveSession, Viewer


async def viewer(deps: Deps, token: str) -> Viewer:
    """Raises ``NotAuthenticated`` with the reason when the token cannot be used."""
    key = cache_keys.session(identity.token_hash(token))
    now = deps.clock.now()
    hit = deps.cache.get(key)
    if isinstance(hit, ActiveSession) and hit.usable_at(now, deps.sessions):
        return hit.viewer
    generation = deps.cache.generation(key)
    found = await identity.active_session(deps.db, deps.clock, deps.sessions, token)
    deps.cache.put(key, found, cache_keys.SESSION_TTL, generation=generation)
    return found.viewer


async def log_out(deps: Deps, who: Viewer) -> None:
    token_hash = await identity.logout(deps.db, deps.clock, who)
    await deps.invalidate(cache_keys.session(token_hash))
