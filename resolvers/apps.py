"""App identities and their certificates: who may call the gateway, and with which key.

Every app on the hospital's side (a channel's front end, HIS sending callbacks, a partner, a
kiosk) is registered with an app id and signs its requests with a key certified by the BFF's own
CA: one root per algorithm (SM2-SM3, RSA-SHA256), created on first use, its key managed by the
keyring. Operators generate, issue, renew and revoke; a revoked or expired certificate is refused
at once (the registry in every process reloads on the broadcast). The app's private key is never
stored: either the app sends its public key, or the BFF generates the pair and hands the private
key over once, in the answer that issues the certificate.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasources.clock import Clock
from datasources.crypto import certificates, primitives
from datasources.crypto.certificates import CertificateAuthority, CertificateError
from datasources.crypto.primitives import CryptoError, PublicKey, SignatureAlgorithm
from datasources.store.audit import AuditLog
from datasources.store.db import Database
from datasources.store.keyring import CA_RSA, CA_SM2, Key, Keyring
from datasources.store.models import Account, AccountRole, AppCertificate, AppIdentity, RolePermission
from resolvers import notifications
from resolvers.errors import InvalidInput, NotAllowed, NotFound

APPS_INVALIDATION = "apps"
MANAGE = "security.manage"
KINDS = ("FRONT_END", "IN_HOUSE", "PARTNER", "DEVICE")
ROOT_VALID_DAYS = 3650
_APP_ID = re.compile(r"^[a-z][a-z0-9-]{2,31}$")


class AppRefused(NotAllowed):
    """An app or certificate request that cannot be honoured as asked; ``reason`` says which rule."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason)


@dataclass(frozen=True, slots=True)
class CertificatePolicy:
    valid_days: int = 365
    warn_days: int = 30
    organization: str = "Hospital BFF"


@dataclass(frozen=True, slots=True)
class IssuedCredentials:
    certificate: AppCertificate
    # PEM of the generated private key, when the BFF generated the pair: shown once, never stored.
    private_key_pem: str | None


@dataclass(frozen=True, slots=True)
class Audited:
    """Who is acting (an operator in the console, an administrator at the CLI): every change to
    apps and certificates is a staff action and lands in the audit log with the change."""

    audit: AuditLog
    actor_account_id: int | None
    actor_role: str
    request_id: str = ""

    async def record(
        self, session: AsyncSession, at: datetime, action: str, target_type: str, target_id: str, detail: dict[str, Any]
    ) -> None:
        await self.audit.record(
            session,
            at=at,
            actor_account_id=self.actor_account_id,
            actor_role=self.actor_role,
            action=action,
            target_type=target_type,
            target_id=target_id,
            detail=detail,
            request_id=self.request_id,
        )


def status_of(cert: AppCertificate, now: datetime) -> str:
    if cert.revoked_at is not None:
        return "REVOKED"
    if now > cert.not_after:
        return "EXPIRED"
    if now < cert.not_before:
        return "NOT_YET_VALID"
    return "ACTIVE"


# --- the CA -----------------------------------------------------------------------------------------


async def authority(
    keyring: Keyring, algorithm: SignatureAlgorithm, *, clock: Clock, organization: str
) -> CertificateAuthority:
    """The root for ``algorithm``, created (key in the keyring, certificate beside it) on first use."""
    purpose = CA_SM2 if algorithm == "SM2-SM3" else CA_RSA
    for _ in range(50):
        if keyring.has_active(purpose):
            key = keyring.active(purpose)
            if key.certificate_pem:
                return certificates.load_authority(key.material, key.certificate_pem)
        else:
            root = certificates.create_authority(
                algorithm,
                common_name=f"{organization} app CA ({algorithm})",
                organization=organization,
                valid_days=ROOT_VALID_DAYS,
                now=clock.now(),
            )
            key = await keyring.ensure(purpose, algorithm, material=root.key_pem())
            if key.material == root.key_pem():
                await keyring.set_certificate(key.kid, root.certificate.pem, expires_at=root.certificate.not_after)
                return root
        await asyncio.sleep(0.1)  # another process is creating it: wait for its certificate
        await keyring.refresh()
    raise CryptoError(f"the {algorithm} app CA could not be set up; check the managed_key table")


# --- lifecycle ----------------------------------------------------------------------------------


async def register_app(
    db: Database,
    clock: Clock,
    *,
    app_id: str,
    name: str,
    kind: str,
    algorithm: str,
    channel: str | None = None,
    sign_responses: bool = False,
    audited: Audited | None = None,
) -> AppIdentity:
    if not _APP_ID.match(app_id):
        raise InvalidInput("appId", "An app id is 3-32 characters: lower-case letters, digits and '-', a letter first.")
    if kind not in KINDS:
        raise InvalidInput("kind", f"The kind is one of {', '.join(KINDS)}.")
    if algorithm not in primitives.SIGNATURE_ALGORITHMS:
        raise InvalidInput(
            "algorithm", f"The signature algorithm is one of {', '.join(primitives.SIGNATURE_ALGORITHMS)}."
        )
    if not name.strip():
        raise InvalidInput("name", "Give the app a name operators will recognise.")
    async with db.writing() as s:
        if await s.get(AppIdentity, app_id) is not None:
            raise AppRefused("APP_EXISTS", f"An app {app_id} is already registered; choose another id.")
        app = AppIdentity(
            app_id=app_id,
            name=name.strip(),
            kind=kind,
            channel=channel,
            signature_algorithm=algorithm,
            sign_responses=sign_responses,
            created_at=clock.now(),
        )
        s.add(app)
        if audited is not None:
            detail = {"kind": kind, "algorithm": algorithm, "sign_responses": sign_responses}
            await audited.record(s, clock.now(), "app.registered", "app", app_id, detail)
    return app


async def issue_certificate(
    db: Database,
    keyring: Keyring,
    clock: Clock,
    policy: CertificatePolicy,
    *,
    app_id: str,
    public_key_pem: str | None = None,
    rsa_bits: int = 2048,
    valid_days: int | None = None,
    actor_account_id: int | None = None,
    audited: Audited | None = None,
) -> IssuedCredentials:
    """Certifies the app's public key, or a key pair generated here (its private half returned once)."""
    async with db.reading() as s:
        app = await s.get(AppIdentity, app_id)
    if app is None or app.disabled_at is not None:
        raise NotFound(f"No active app {app_id}; register it first.")
    algorithm: SignatureAlgorithm = app.signature_algorithm  # type: ignore[assignment]
    private_pem: str | None = None
    if public_key_pem:
        try:
            public: PublicKey = primitives.load_public_key(public_key_pem.encode())
        except CryptoError as exc:
            raise InvalidInput(
                "publicKeyPem", f"{exc}; send the app's public key as PEM (SubjectPublicKeyInfo)."
            ) from exc
        if primitives.algorithm_of(public) != algorithm:
            raise InvalidInput(
                "publicKeyPem", f"App {app_id} signs with {algorithm}; this key is {primitives.algorithm_of(public)}."
            )
    else:
        try:
            private = primitives.generate_signing_key(algorithm, rsa_bits=rsa_bits)
        except CryptoError as exc:
            raise InvalidInput("rsaBits", str(exc)) from exc
        public = private.public_key()
        private_pem = primitives.private_key_pem(private).decode()
    days = valid_days or policy.valid_days
    if not 1 <= days <= 825:
        raise InvalidInput("validDays", "A certificate is valid for 1 to 825 days.")
    root = await authority(keyring, algorithm, clock=clock, organization=policy.organization)
    now = clock.now()
    try:
        issued = certificates.issue(
            root,
            subject_public_key=public,
            app_id=app.app_id,
            app_name=app.name,
            not_before=now - timedelta(minutes=5),  # a little slack for clocks behind ours
            not_after=now + timedelta(days=days),
        )
    except CertificateError as exc:
        raise AppRefused(exc.code, str(exc)) from exc
    row = AppCertificate(
        serial=issued.serial,
        app_id=app.app_id,
        algorithm=algorithm,
        key_bits=getattr(public, "key_size", 256),
        fingerprint=issued.fingerprint,
        certificate_pem=issued.pem,
        not_before=issued.not_before,
        not_after=issued.not_after,
        issued_at=now,
        issued_by_account_id=actor_account_id,
    )
    async with db.writing() as s:
        s.add(row)
        if audited is not None:
            detail = {
                "serial": row.serial,
                "generated_key": private_pem is not None,
                "not_after": row.not_after.isoformat(),
            }
            await audited.record(s, now, "app.certificate_issued", "app", app.app_id, detail)
    return IssuedCredentials(certificate=row, private_key_pem=private_pem)


async def renew_certificate(
    db: Database,
    keyring: Keyring,
    clock: Clock,
    policy: CertificatePolicy,
    *,
    serial: str,
    public_key_pem: str | None = None,
    valid_days: int | None = None,
    actor_account_id: int | None = None,
    audited: Audited | None = None,
) -> IssuedCredentials:
    """A new certificate for the same app; the old one stays valid until it expires (or is revoked),
    so the app can switch without a gap."""
    async with db.reading() as s:
        old = await s.get(AppCertificate, serial)
    if old is None:
        raise NotFound(f"No certificate {serial}.")
    if old.revoked_at is not None:
        raise AppRefused("CERT_REVOKED", f"Certificate {serial} was revoked; issue a new one instead of renewing it.")
    fresh = await issue_certificate(
        db,
        keyring,
        clock,
        policy,
        app_id=old.app_id,
        public_key_pem=public_key_pem,
        rsa_bits=old.key_bits if old.algorithm == "RSA-SHA256" else 2048,
        valid_days=valid_days,
        actor_account_id=actor_account_id,
        audited=audited,
    )
    async with db.writing() as s:
        await s.execute(
            update(AppCertificate)
            .where(col(AppCertificate.serial) == serial)
            .values(renewed_by_serial=fresh.certificate.serial)
        )
        if audited is not None:
            detail = {"serial": serial, "renewed_by": fresh.certificate.serial}
            await audited.record(s, clock.now(), "app.certificate_renewed", "app", old.app_id, detail)
    return fresh


async def revoke_certificate(
    db: Database, clock: Clock, *, serial: str, reason: str, audited: Audited | None = None
) -> AppCertificate:
    if not reason.strip():
        raise InvalidInput("reason", "Say why the certificate is revoked (key compromised, app retired, ...).")
    async with db.writing() as s:
        cert = await s.get(AppCertificate, serial)
        if cert is None:
            raise NotFound(f"No certificate {serial}.")
        if cert.revoked_at is None:
            cert.revoked_at = clock.now()
            cert.revocation_reason = reason.strip()[:64]
            if audited is not None:
                detail = {"serial": serial, "reason": cert.revocation_reason}
                await audited.record(s, cert.revoked_at, "app.certificate_revoked", "app", cert.app_id, detail)
    return cert


async def apps(db: Database) -> Sequence[AppIdentity]:
    async with db.reading() as s:
        return (await s.execute(select(AppIdentity).order_by(col(AppIdentity.app_id)))).scalars().all()


async def app_certificates(
    db: Database, *, app_id: str | None = None, expiring_before: datetime | None = None
) -> Sequence[AppCertificate]:
    query = select(AppCertificate).order_by(col(AppCertificate.not_after))
    if app_id is not None:
        query = query.where(col(AppCertificate.app_id) == app_id)
    if expiring_before is not None:
        query = query.where(col(AppCertificate.not_after) <= expiring_before, col(AppCertificate.revoked_at).is_(None))
    async with db.reading() as s:
        return (await s.execute(query)).scalars().all()


# --- expiry ---------------------------------------------------------------------------------------


def expiring_keys(keyring: Keyring, before: datetime) -> list[Key]:
    return [key for key in keyring.keys() if key.expires_at is not None and key.expires_at <= before]


async def warn_expiring(db: Database, keyring: Keyring, clock: Clock, policy: CertificatePolicy) -> int:
    """Tells every operator who manages security, once per certificate, that it expires within
    ``warn_days``. Returns how many certificates were warned about."""
    now = clock.now()
    horizon = now + timedelta(days=policy.warn_days)
    due = [c for c in await app_certificates(db, expiring_before=horizon) if c.expiry_warned_at is None]
    keys = [k for k in expiring_keys(keyring, horizon) if k.state == "ACTIVE"]
    if not due and not keys:
        return 0
    async with db.writing() as s:
        operators = (
            (
                await s.execute(
                    select(col(AccountRole.account_id))
                    .join(Account, col(AccountRole.account_id) == col(Account.id))
                    .join(RolePermission, col(RolePermission.role_id) == col(AccountRole.role_id))
                    .where(col(RolePermission.permission) == MANAGE, col(Account.disabled_at).is_(None))
                    .distinct()
                )
            )
            .scalars()
            .all()
        )
        lines = [f"证书 {c.serial[:12]}… ({c.app_id}) 将于 {c.not_after:%Y-%m-%d} 到期" for c in due]
        lines += [f"密钥 {k.kid} ({k.purpose}) 将于 {k.expires_at:%Y-%m-%d} 到期" for k in keys if k.expires_at]
        for account_id in operators:
            notifications.add(
                s, account_id=account_id, kind="SECURITY", title="证书/密钥即将到期", body="\n".join(lines), at=now
            )
        for cert in due:
            await s.execute(
                update(AppCertificate).where(col(AppCertificate.serial) == cert.serial).values(expiry_warned_at=now)
            )
    return len(due) + len(keys)


# --- usage ----------------------------------------------------------------------------------------


class Usage:
    """Requests per certificate, counted in memory and written in batches (never a write per request)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._last: dict[str, datetime] = {}

    def record(self, serial: str, at: datetime) -> None:
        self._counts[serial] += 1
        self._last[serial] = at

    async def flush(self, db: Database) -> None:
        counts, last = self._counts, self._last
        if not counts:
            return
        self._counts, self._last = Counter(), {}
        async with db.writing() as s:
            for serial, n in counts.items():
                await s.execute(
                    update(AppCertificate)
                    .where(col(AppCertificate.serial) == serial)
                    .values(request_count=col(AppCertificate.request_count) + n, last_used_at=last[serial])
                )
