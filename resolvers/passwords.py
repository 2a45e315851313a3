"""Staff passwords: argon2id hashes, the rules a new password must meet, lockout after failures,
and changing one's own password (等保三级: 身份鉴别, 登录失败处理)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, NoReturn

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import update
from sqlmodel import col

from datasources.clock import Clock
from datasources.store.audit import AuditLog
from datasources.store.db import Database
from datasources.store.models import AuthSession, StaffCredential
from resolvers.errors import AccountLocked, DomainError, InvalidInput, NotAuthenticated, WeakPassword

if TYPE_CHECKING:
    from resolvers.identity import SessionPolicy

MIN_LENGTH = 10
MIN_CLASSES = 3  # of lower case, upper case, digits, symbols (anything else, spaces included)
USERNAME_MIN_LENGTH = 3  # shorter usernames ("li") would forbid half the dictionary

TOO_SHORT = "TOO_SHORT"
TOO_FEW_CHARACTER_CLASSES = "TOO_FEW_CHARACTER_CLASSES"
CONTAINS_USERNAME = "CONTAINS_USERNAME"
SAME_AS_CURRENT = "SAME_AS_CURRENT"
_EXPLAINED = {
    TOO_SHORT: f"at least {MIN_LENGTH} characters",
    TOO_FEW_CHARACTER_CLASSES: f"at least {MIN_CLASSES} of: lower case, upper case, digits, symbols",
    CONTAINS_USERNAME: "not containing the username",
    SAME_AS_CURRENT: "different from the current password",
}

_hasher = PasswordHasher()  # argon2id, 64 MiB, 3 passes: deliberately slow
DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def _classes(password: str) -> int:
    return sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )


def problems(password: str, *, username: str, current_hash: str | None = None) -> list[str]:
    """The rules ``password`` breaks, in a stable order; empty when it may be used."""
    found = []
    if len(password) < MIN_LENGTH:
        found.append(TOO_SHORT)
    if _classes(password) < MIN_CLASSES:
        found.append(TOO_FEW_CHARACTER_CLASSES)
    name = username.strip().casefold()
    if len(name) >= USERNAME_MIN_LENGTH and name in password.casefold():
        found.append(CONTAINS_USERNAME)
    if current_hash is not None and verify_password(current_hash, password):
        found.append(SAME_AS_CURRENT)
    return found


def require_strong(password: str, *, username: str, current_hash: str | None = None) -> None:
    found = problems(password, username=username, current_hash=current_hash)
    if found:
        raise WeakPassword(found, "The new password must be " + "; ".join(_EXPLAINED[p] for p in found) + ".")


async def record_failure(
    db: Database,
    audit: AuditLog,
    credential: StaffCredential,
    now: datetime,
    policy: SessionPolicy,
    request_id: str,
    *,
    refusal: DomainError,
    reason: str,
) -> NoReturn:
    """Counts a failed proof (password, second-factor code); the last allowed one locks the account
    for a while. Raises ``refusal``, or ``AccountLocked`` when this failure locked it."""
    failures = credential.failed_attempts + 1
    locked_until = now + policy.lockout if failures >= policy.max_failures else None
    async with db.writing() as s:
        await s.execute(
            update(StaffCredential)
            .where(col(StaffCredential.account_id) == credential.account_id)
            .values(failed_attempts=0 if locked_until else failures, locked_until=locked_until)
        )
        await audit.record(
            s,
            at=now,
            actor_account_id=credential.account_id,
            actor_role="STAFF",
            action="login.failed",
            target_type="account",
            target_id=str(credential.account_id),
            detail={"locked": locked_until is not None, "reason": reason},
            request_id=request_id,
        )
    if locked_until is not None:
        raise AccountLocked(locked_until)
    raise refusal


@dataclass(frozen=True, slots=True)
class PasswordChange:
    changed_at: datetime
    # Token hashes of the account's other sessions, revoked by the change: their cached copies go too.
    revoked: tuple[str, ...]


async def change_password(
    db: Database,
    audit: AuditLog,
    clock: Clock,
    policy: SessionPolicy,
    *,
    account_id: int,
    session_id: int | None,
    current: str,
    new: str,
    request_id: str = "",
) -> PasswordChange:
    """The staff member's own change: the current password proves it is them (a wrong one counts
    toward the lockout like a failed login); the account's other sessions end."""
    now = clock.now()
    async with db.reading() as s:
        credential = await s.get(StaffCredential, account_id)
    if credential is None:
        raise NotAuthenticated("Only staff accounts with a password can change it.")
    if credential.locked_until is not None and credential.locked_until > now:
        raise AccountLocked(credential.locked_until)
    if not verify_password(credential.password_hash, current):
        await record_failure(
            db,
            audit,
            credential,
            now,
            policy,
            request_id,
            refusal=InvalidInput("current", "The current password is wrong."),
            reason="password",
        )
    require_strong(new, username=credential.username, current_hash=credential.password_hash)
    async with db.writing() as s:
        await s.execute(
            update(StaffCredential)
            .where(col(StaffCredential.account_id) == account_id)
            .values(password_hash=hash_password(new), password_changed_at=now, failed_attempts=0, locked_until=None)
        )
        others = (
            (
                await s.execute(
                    update(AuthSession)
                    .where(
                        col(AuthSession.account_id) == account_id,
                        col(AuthSession.revoked_at).is_(None),
                        col(AuthSession.id) != (session_id or 0),
                    )
                    .values(revoked_at=now)
                    .returning(col(AuthSession.token_hash))
                )
            )
            .scalars()
            .all()
        )
        await audit.record(
            s,
            at=now,
            actor_account_id=account_id,
            actor_role="STAFF",
            action="password.changed",
            target_type="account",
            target_id=str(account_id),
            detail={"sessions_ended": len(others)},
            request_id=request_id,
        )
    return PasswordChange(changed_at=now, revoked=tuple(others))
