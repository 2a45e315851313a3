"""The operations console's security pages: registered apps, their certificates, managed keys."""

from __future__ import annotations

import datetime as dt
from collections.abc import Coroutine
from typing import Annotated, Any

import strawberry

from datasources.store import models
from datasources.store.keyring import Key
from resolvers import apps
from resolvers.errors import DomainError
from schema.common import Ctx, InvalidInputError, NotAllowedError, NotFoundError
from schema.errors import user_error
from schema.permissions import CanManageSecurity


@strawberry.type(description="A certificate the BFF's CA issued to an app. Its private key is never stored.")
class AppCertificate:
    serial: str
    app_id: str
    algorithm: str
    key_bits: int
    fingerprint: str = strawberry.field(description="SHA-256 of the DER certificate, hex.")
    not_before: dt.datetime
    not_after: dt.datetime
    status: str = strawberry.field(description="ACTIVE, REVOKED, EXPIRED or NOT_YET_VALID, now.")
    issued_at: dt.datetime
    revoked_at: dt.datetime | None
    revocation_reason: str | None
    renewed_by_serial: str | None
    last_used_at: dt.datetime | None
    request_count: int
    certificate_pem: str

    @staticmethod
    def of(row: models.AppCertificate, now: dt.datetime) -> AppCertificate:
        return AppCertificate(
            serial=row.serial,
            app_id=row.app_id,
            algorithm=row.algorithm,
            key_bits=row.key_bits,
            fingerprint=row.fingerprint,
            not_before=row.not_before,
            not_after=row.not_after,
            status=apps.status_of(row, now),
            issued_at=row.issued_at,
            revoked_at=row.revoked_at,
            revocation_reason=row.revocation_reason,
            renewed_by_serial=row.renewed_by_serial,
            last_used_at=row.last_used_at,
            request_count=row.request_count,
            certificate_pem=row.certificate_pem,
        )


@strawberry.type(description="An app that calls the gateway: a front end, HIS or another in-house system, a partner.")
class App:
    app_id: str
    name: str
    kind: str = strawberry.field(description="FRONT_END, IN_HOUSE, PARTNER or DEVICE.")
    channel: str | None
    signature_algorithm: str = strawberry.field(description="SM2-SM3 or RSA-SHA256; requests naming another fail.")
    sign_responses: bool
    created_at: dt.datetime
    disabled: bool

    @staticmethod
    def of(row: models.AppIdentity) -> App:
        return App(
            app_id=row.app_id,
            name=row.name,
            kind=row.kind,
            channel=row.channel,
            signature_algorithm=row.signature_algorithm,
            sign_responses=row.sign_responses,
            created_at=row.created_at,
            disabled=row.disabled_at is not None,
        )

    @strawberry.field
    async def certificates(self, info: Ctx) -> list[AppCertificate]:
        now = info.context.deps.security_clock.now()
        rows = await apps.app_certificates(info.context.deps.db, app_id=self.app_id)
        return [AppCertificate.of(row, now) for row in rows]


@strawberry.type(description="A managed key: never its material, only what operators need to look after it.")
class ManagedKey:
    kid: str
    purpose: str
    algorithm: str
    version: int
    state: str = strawberry.field(description="ACTIVE (new writes), DECRYPT_ONLY (old data) or RETIRED.")
    created_at: dt.datetime
    expires_at: dt.datetime | None

    @staticmethod
    def of(key: Key) -> ManagedKey:
        return ManagedKey(
            kid=key.kid,
            purpose=key.purpose,
            algorithm=key.algorithm,
            version=key.version,
            state=key.state,
            created_at=key.created_at,
            expires_at=key.expires_at,
        )


@strawberry.type
class SecurityConsole:
    @strawberry.field
    async def apps(self, info: Ctx) -> list[App]:
        return [App.of(row) for row in await apps.apps(info.context.deps.db)]

    @strawberry.field(
        description="Certificates, soonest to expire first; `expiringWithinDays` keeps the unrevoked ones due."
    )
    async def certificates(self, info: Ctx, expiring_within_days: int | None = None) -> list[AppCertificate]:
        now = info.context.deps.security_clock.now()
        before = now + dt.timedelta(days=expiring_within_days) if expiring_within_days is not None else None
        rows = await apps.app_certificates(info.context.deps.db, expiring_before=before)
        return [AppCertificate.of(row, now) for row in rows]

    @strawberry.field
    def managed_keys(self, info: Ctx, expiring_within_days: int | None = None) -> list[ManagedKey]:
        keyring = info.context.deps.cipher.keyring
        if expiring_within_days is None:
            return [ManagedKey.of(k) for k in keyring.keys()]
        before = info.context.deps.security_clock.now() + dt.timedelta(days=expiring_within_days)
        return [ManagedKey.of(k) for k in apps.expiring_keys(keyring, before)]


@strawberry.input
class RegisterAppInput:
    app_id: str = strawberry.field(description="3-32 characters: a-z, 0-9 and '-', a letter first.")
    name: str
    kind: str = strawberry.field(description="FRONT_END, IN_HOUSE, PARTNER or DEVICE.")
    signature_algorithm: str = strawberry.field(description="SM2-SM3 or RSA-SHA256.")
    channel: str | None = None
    sign_responses: bool = False


@strawberry.input
class IssueAppCertificateInput:
    app_id: str
    public_key_pem: str | None = strawberry.field(
        default=None,
        description="The app's public key (PEM). Omitted: the BFF generates the pair and returns the private key once.",
    )
    rsa_bits: int = strawberry.field(default=2048, description="RSA apps, generated keys: 2048, 3072 or 4096.")
    valid_days: int | None = None


@strawberry.input
class RenewAppCertificateInput:
    serial: str
    public_key_pem: str | None = None
    valid_days: int | None = None


@strawberry.input
class RevokeAppCertificateInput:
    serial: str
    reason: str


@strawberry.type
class AppRegistered:
    app: App


@strawberry.type(description="Store `privateKeyPem` now: it is shown once and the BFF keeps no copy.")
class AppCertificateIssued:
    certificate: AppCertificate
    private_key_pem: str | None


@strawberry.type
class AppCertificateRevoked:
    certificate: AppCertificate


RegisterAppPayload = Annotated[
    AppRegistered | InvalidInputError | NotAllowedError, strawberry.union("RegisterAppPayload")
]
IssueAppCertificatePayload = Annotated[
    AppCertificateIssued | InvalidInputError | NotAllowedError | NotFoundError,
    strawberry.union("IssueAppCertificatePayload"),
]
RevokeAppCertificatePayload = Annotated[
    AppCertificateRevoked | InvalidInputError | NotFoundError, strawberry.union("RevokeAppCertificatePayload")
]


def _audited(info: Ctx) -> apps.Audited:
    viewer = info.context.viewer
    return apps.Audited(info.context.deps.audit, viewer.account_id, viewer.role or "", info.context.request_id)


async def _issuing(info: Ctx, issuing: Coroutine[Any, Any, apps.IssuedCredentials]) -> IssueAppCertificatePayload:
    try:
        issued = await issuing
    except DomainError as exc:
        return user_error(exc)  # type: ignore[no-any-return]
    await _changed(info)
    now = info.context.deps.security_clock.now()
    return AppCertificateIssued(
        certificate=AppCertificate.of(issued.certificate, now), private_key_pem=issued.private_key_pem
    )


async def _changed(info: Ctx) -> None:
    """Every process reloads its registry: a revocation is refused everywhere at once."""
    await info.context.deps.invalidate(apps.APPS_INVALIDATION)


@strawberry.type
class AppsQuery:
    @strawberry.field(
        permission_classes=[CanManageSecurity], description="Apps, certificates and keys (security.manage)."
    )
    def security(self) -> SecurityConsole:
        return SecurityConsole()


@strawberry.type
class AppsMutation:
    @strawberry.mutation(permission_classes=[CanManageSecurity])
    async def register_app(self, info: Ctx, input: RegisterAppInput) -> RegisterAppPayload:
        deps = info.context.deps
        try:
            row = await apps.register_app(
                deps.db,
                deps.security_clock,
                app_id=input.app_id,
                name=input.name,
                kind=input.kind,
                algorithm=input.signature_algorithm,
                channel=input.channel,
                sign_responses=input.sign_responses,
                audited=_audited(info),
            )
        except DomainError as exc:
            return user_error(exc)
        await _changed(info)
        return AppRegistered(app=App.of(row))

    @strawberry.mutation(permission_classes=[CanManageSecurity])
    async def issue_app_certificate(self, info: Ctx, input: IssueAppCertificateInput) -> IssueAppCertificatePayload:
        deps = info.context.deps
        return await _issuing(
            info,
            apps.issue_certificate(
                deps.db,
                deps.cipher.keyring,
                deps.security_clock,
                deps.certificates,
                app_id=input.app_id,
                public_key_pem=input.public_key_pem,
                rsa_bits=input.rsa_bits,
                valid_days=input.valid_days,
                actor_account_id=info.context.viewer.account_id,
                audited=_audited(info),
            ),
        )

    @strawberry.mutation(
        permission_classes=[CanManageSecurity],
        description="A new certificate; the old one stays valid until it expires.",
    )
    async def renew_app_certificate(self, info: Ctx, input: RenewAppCertificateInput) -> IssueAppCertificatePayload:
        deps = info.context.deps
        return await _issuing(
            info,
            apps.renew_certificate(
                deps.db,
                deps.cipher.keyring,
                deps.security_clock,
                deps.certificates,
                serial=input.serial,
                public_key_pem=input.public_key_pem,
                valid_days=input.valid_days,
                actor_account_id=info.context.viewer.account_id,
                audited=_audited(info),
            ),
        )

    @strawberry.mutation(permission_classes=[CanManageSecurity], description="Refused by every BFF process at once.")
    async def revoke_app_certificate(self, info: Ctx, input: RevokeAppCertificateInput) -> RevokeAppCertificatePayload:
        deps = info.context.deps
        try:
            row = await apps.revoke_certificate(
                deps.db, deps.security_clock, serial=input.serial, reason=input.reason, audited=_audited(info)
            )
        except DomainError as exc:
            return user_error(exc)
        await _changed(info)
        return AppCertificateRevoked(certificate=AppCertificate.of(row, deps.security_clock.now()))
