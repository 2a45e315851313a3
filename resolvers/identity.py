"""Who is calling: channel logins, staff passwords, sessions, roles and permissions."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasources.channels.contract import ChannelLogin
from datasources.clock import Clock
from datasources.errors import SourceRejected, SourceUnavailable
from datasources.store.audit import AuditLog
from datasources.store.db import Database
from datasources.store.fieldcrypt import FieldCipher
from datasources.store.models import (
    Account,
    AccountRole,
    AuthSession,
    ChannelIdentity,
    OperatorRole,
    RolePermission,
    StaffCredential,
)
from resolvers import passwords, second_factor
from resolvers.errors import (
    AccountLocked,
    InvalidInput,
    LoginFailed,
    NotAuthenticated,
    SecondFactorNotEnrolled,
    SecondFactorRejected,
    SecondFactorReused,
    ServiceUnavailable,
)

PATIENT = "PATIENT"
DOCTOR = "DOCTOR"
PHARMACIST = "PHARMACIST"
OPERATOR = "OPERATOR"
DEVICE = "DEVICE"  # kiosks and bedside terminals: the patient proves identity per transaction
ROLES = (PATIENT, DOCTOR, PHARMACIST, OPERATOR, DEVICE)
PASSWORD = "PASSWORD"  # noqa: S105 - the name of the staff authenticator, not a secret
STAFF_ROLES = (DOCTOR, PHARMACIST, OPERATOR)
LAST_SEEN_RESOLUTION = timedelta(seconds=60)
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Viewer:
    account_id: int | None = None
    role: str | None = None
    display_name: str = ""
    channel: str | None = None
    session_id: int | None = None
    his_staff_id: str | None = None
    permissions: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_authenticated(self) -> bool:
        return self.account_id is not None


ANONYMOUS = Viewer()


@dataclass(frozen=True, slots=True)
class FrontEnd:
    """A front end that may open sessions (from its channel profile in clients/): its session
    channel code, the authenticator its users log in with, and the roles it serves."""

    code: str  # WECHAT, ELDERLY, ALIPAY, DOCTOR_H5, ...
    login: str  # WECHAT, ALIPAY or PASSWORD
    roles: frozenset[str]
    payment: str | None = None  # WECHAT_PAY, ALIPAY: the channel its patients pay with


def front_end(front_ends: Mapping[str, FrontEnd], code: str, login: str) -> FrontEnd:
    found = front_ends.get(code)
    if found is None or found.login != login:
        usable = ", ".join(sorted(c for c, f in front_ends.items() if f.login == login))
        raise InvalidInput("channel", f"Unknown front end {code!r} for this kind of login; use one of: {usable}.")
    return found


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle: timedelta = timedelta(minutes=120)
    absolute: timedelta = timedelta(hours=72)
    max_failures: int = 5
    lockout: timedelta = timedelta(minutes=15)
    # Production: an operator without a confirmed TOTP factor is refused (development lets them in).
    operators_need_second_factor: bool = False
    totp_issuer: str = "Hospital BFF"


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str
    viewer: Viewer
    expires_at: datetime
    new_account: bool = False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def login_with_channel(
    db: Database, channels: ChannelLogin, clock: Clock, policy: SessionPolicy, *, app: FrontEnd, code: str
) -> LoginResult:
    """A patient front end's login: the channel's one-time code → its stable user id → the account."""
    channel = app.login
    if PATIENT not in app.roles:
        raise LoginFailed("This app is not for patients.")
    if not code or len(code) > 128:
        raise InvalidInput("code", "Send the login code the mini-program just received.")
    try:
        subject = await channels.exchange(channel, code)
    except SourceRejected as exc:
        raise LoginFailed("The login code is invalid or has expired; log in again from the mini-program.") from exc
    except SourceUnavailable as exc:
        raise ServiceUnavailable("The login service is not answering; please try again in a moment.") from exc
    now = clock.now()
    async with db.writing() as s:
        identity = (
            await s.execute(
                select(ChannelIdentity).where(
                    col(ChannelIdentity.channel) == subject.channel, col(ChannelIdentity.subject) == subject.subject
                )
            )
        ).scalar_one_or_none()
        new_account = identity is None
        if identity is None:
            account = Account(role=PATIENT, display_name=f"{channel.title()} user", created_at=now)
            s.add(account)
            await s.flush()
            s.add(ChannelIdentity(account_id=account.id or 0, channel=channel, subject=subject.subject, created_at=now))
        else:
            found = await s.get(Account, identity.account_id)
            assert found is not None
            account = found
        if account.disabled_at is not None:
            raise LoginFailed("This account is disabled; contact the hospital.")
        token, opened = _open_session(s, account, app.code, now, policy)
        await s.flush()
    viewer = await _viewer(db, account, opened)
    return LoginResult(token=token, viewer=viewer, expires_at=opened.expires_at, new_account=new_account)


def _open_session(
    s: AsyncSession, account: Account, channel: str, now: datetime, policy: SessionPolicy
) -> tuple[str, AuthSession]:
    token = secrets.token_urlsafe(32)
    row = AuthSession(
        token_hash=token_hash(token),
        account_id=account.id or 0,
        channel=channel,
        created_at=now,
        last_seen_at=now,
        expires_at=now + policy.absolute,
    )
    s.add(row)
    return token, row


async def login_with_password(
    db: Database,
    clock: Clock,
    policy: SessionPolicy,
    *,
    cipher: FieldCipher,
    audit: AuditLog,
    username: str,
    password: str,
    app: FrontEnd,
    totp_code: str | None = None,
    request_id: str = "",
) -> LoginResult:
    """A staff login; the account's role must be one the front end serves. An account with a confirmed
    second factor also needs its current TOTP code; wrong codes count toward the lockout like wrong
    passwords. Operators must have one in production."""
    now = clock.now()
    async with db.reading() as s:
        found = (
            await s.execute(
                select(StaffCredential, Account)
                .join(Account, col(Account.id) == col(StaffCredential.account_id))
                .where(col(StaffCredential.username) == username.strip())
            )
        ).first()
    if found is None:
        passwords.verify_password(passwords.DUMMY_HASH, password)  # same cost: no username probing by timing
        raise LoginFailed("Wrong username or password.")
    credential, account = found
    if credential.locked_until is not None and credential.locked_until > now:
        raise AccountLocked(credential.locked_until)
    if not passwords.verify_password(credential.password_hash, password):
        await passwords.record_failure(
            db,
            audit,
            credential,
            now,
            policy,
            request_id,
            refusal=LoginFailed("Wrong username or password."),
            reason="password",
        )
    if account.disabled_at is not None:
        raise LoginFailed("This account is disabled; contact the hospital.")
    if account.role not in app.roles:
        raise LoginFailed(f"A {account.role.lower()} account cannot use this app; use your own role's app.")
    step = await _second_factor(db, cipher, audit, credential, account, totp_code, now, policy, request_id)
    try:
        async with db.writing() as s:
            reset = {"failed_attempts": 0, "locked_until": None}
            if step is None:
                await s.execute(
                    update(StaffCredential)
                    .where(col(StaffCredential.account_id) == credential.account_id)
                    .values(**reset)
                )
            elif not await second_factor.consume(s, credential.account_id, step, **reset):
                raise SecondFactorReused("This code was used already; wait for the next one.")
            token, opened = _open_session(s, account, app.code, now, policy)
            await s.flush()
            await audit.record(
                s,
                at=now,
                actor_account_id=account.id,
                actor_role=account.role,
                action="login",
                target_type="account",
                target_id=str(account.id),
                detail={"channel": app.code, "second_factor": step is not None},
                request_id=request_id,
            )
    except SecondFactorReused as reused:
        await passwords.record_failure(
            db, audit, credential, now, policy, request_id, refusal=reused, reason="totp-reused"
        )
    viewer = await _viewer(db, account, opened)
    return LoginResult(token=token, viewer=viewer, expires_at=opened.expires_at)


async def _second_factor(
    db: Database,
    cipher: FieldCipher,
    audit: AuditLog,
    credential: StaffCredential,
    account: Account,
    code: str | None,
    now: datetime,
    policy: SessionPolicy,
    request_id: str,
) -> int | None:
    """The time step of the login's valid TOTP code, or None when the account logs in without one."""
    if credential.totp_confirmed_at is not None:
        try:
            return second_factor.login_step(cipher, credential, code, now)
        except SecondFactorRejected as wrong:
            await passwords.record_failure(db, audit, credential, now, policy, request_id, refusal=wrong, reason="totp")
    if account.role == OPERATOR:
        if policy.operators_need_second_factor:
            raise SecondFactorNotEnrolled(
                "Operators log in with a second factor: ask an administrator to enroll your authenticator app "
                "(python -m bff.staff totp-enroll <username> on the BFF's host), then log in with its code."
            )
        log.warning("operator account %s logged in without a second factor (allowed in development only)", account.id)
    return None


async def _permissions(db: Database, account: Account) -> frozenset[str]:
    if account.role != OPERATOR:
        return frozenset()
    async with db.reading() as s:
        rows = (
            (
                await s.execute(
                    select(col(RolePermission.permission))
                    .join(AccountRole, col(AccountRole.role_id) == col(RolePermission.role_id))
                    .where(col(AccountRole.account_id) == account.id)
                )
            )
            .scalars()
            .all()
        )
    return frozenset(rows)


@dataclass(frozen=True, slots=True)
class ActiveSession:
    """A session found valid at ``last_seen_at``: what the session cache keeps."""

    viewer: Viewer
    expires_at: datetime
    last_seen_at: datetime

    def usable_at(self, now: datetime, policy: SessionPolicy) -> bool:
        """Still valid without asking the database: not expired, not idle, last use recorded."""
        return self.expires_at > now and now - self.last_seen_at < _recorded_within(policy)

    def due_at(self, now: datetime, policy: SessionPolicy) -> bool:
        """Time to ask the database again (which records the use) before the copy stops being usable."""
        return now - self.last_seen_at >= _recorded_within(policy) * 0.75


def _recorded_within(policy: SessionPolicy) -> timedelta:
    """A session's last use is recorded at least this often while it is used."""
    return min(LAST_SEEN_RESOLUTION, policy.idle)


async def viewer_for_token(db: Database, clock: Clock, policy: SessionPolicy, token: str) -> Viewer:
    """Resolves a bearer token; idle and absolute expiry and revocation apply at once."""
    return (await active_session(db, clock, policy, token)).viewer


async def active_session(db: Database, clock: Clock, policy: SessionPolicy, token: str) -> ActiveSession:
    now = clock.now()
    async with db.reading() as s:
        row = (
            await s.execute(
                select(AuthSession, Account)
                .join(Account, col(Account.id) == col(AuthSession.account_id))
                .where(col(AuthSession.token_hash) == token_hash(token))
            )
        ).first()
    if row is None:
        raise NotAuthenticated("The session token is not valid; log in again.")
    session, account = row
    if session.revoked_at is not None:
        raise NotAuthenticated("This session was logged out; log in again.")
    if session.expires_at <= now or session.last_seen_at + policy.idle <= now:
        raise NotAuthenticated("The session has expired; log in again.")
    if account.disabled_at is not None:
        raise NotAuthenticated("This account is disabled; contact the hospital.")
    last_seen = session.last_seen_at
    if now - last_seen >= _recorded_within(policy) * 0.75:
        async with db.writing() as s:
            await s.execute(update(AuthSession).where(col(AuthSession.id) == session.id).values(last_seen_at=now))
        last_seen = now
    return ActiveSession(await _viewer(db, account, session), session.expires_at, last_seen)


async def _viewer(db: Database, account: Account, session: AuthSession) -> Viewer:
    return Viewer(
        account_id=account.id,
        role=account.role,
        display_name=account.display_name,
        channel=session.channel,
        session_id=session.id,
        his_staff_id=account.his_staff_id,
        permissions=await _permissions(db, account),
    )


async def logout(db: Database, clock: Clock, viewer: Viewer) -> str:
    """Revokes the viewer's session; returns its token hash, the key it was cached under."""
    if viewer.session_id is None:
        raise NotAuthenticated("Nobody is logged in.")
    async with db.writing() as s:
        revoked = await s.execute(
            update(AuthSession)
            .where(col(AuthSession.id) == viewer.session_id)
            .values(revoked_at=clock.now())
            .returning(col(AuthSession.token_hash))
        )
        return str(revoked.scalar_one())


async def create_staff(
    db: Database,
    clock: Clock,
    *,
    role: str,
    username: str,
    password: str,
    display_name: str,
    his_staff_id: str | None = None,
    operator_roles: dict[str, list[str]] | None = None,
) -> int:
    """A staff account with a password; operators get permissions only through named roles."""
    if role not in STAFF_ROLES:
        raise InvalidInput("role", f"Staff roles are {', '.join(STAFF_ROLES)}.")
    passwords.require_strong(password, username=username)
    now = clock.now()
    async with db.writing() as s:
        account = Account(role=role, display_name=display_name, his_staff_id=his_staff_id, created_at=now)
        s.add(account)
        await s.flush()
        s.add(
            StaffCredential(
                account_id=account.id or 0,
                username=username,
                password_hash=passwords.hash_password(password),
                password_changed_at=now,
            )
        )
        for name, permissions in (operator_roles or {}).items():
            found = (await s.execute(select(OperatorRole).where(col(OperatorRole.name) == name))).scalar_one_or_none()
            if found is None:
                found = OperatorRole(name=name)
                s.add(found)
                await s.flush()
                s.add_all(RolePermission(role_id=found.id or 0, permission=p) for p in permissions)
            s.add(AccountRole(account_id=account.id or 0, role_id=found.id or 0))
        return account.id or 0
