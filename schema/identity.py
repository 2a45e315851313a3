"""Logins and sessions."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import strawberry

from datasources.channels.contract import ALIPAY, WECHAT
from resolvers import identity, second_factor, sessions
from resolvers.errors import DomainError
from schema.common import (
    AccountLockedError,
    Ctx,
    InvalidInputError,
    LoginFailedError,
    NotAllowedError,
    SecondFactorNotEnrolledError,
    SecondFactorRejectedError,
    SecondFactorRequiredError,
    ServiceUnavailableError,
    WeakPasswordError,
)
from schema.enums import Role
from schema.errors import user_error
from schema.permissions import IsAuthenticated, IsStaff


@strawberry.type
class Account:
    id: strawberry.ID
    role: Role
    display_name: str
    permissions: list[str]

    @staticmethod
    def of(v: identity.Viewer) -> Account:
        return Account(
            id=strawberry.ID(str(v.account_id)),
            role=Role(v.role),
            display_name=v.display_name,
            permissions=sorted(v.permissions),
        )


@strawberry.type(description="Send `token` as `Authorization: Bearer <token>` (HTTP) or in connection_init.")
class LoginSuccess:
    token: str
    expires_at: dt.datetime
    account: Account
    new_account: bool


LoginPayload = Annotated[
    LoginSuccess
    | LoginFailedError
    | AccountLockedError
    | InvalidInputError
    | ServiceUnavailableError
    | SecondFactorRequiredError
    | SecondFactorRejectedError
    | SecondFactorNotEnrolledError,
    strawberry.union("LoginPayload"),
]


@strawberry.input
class WechatLoginInput:
    code: str = strawberry.field(description="The code from wx.login().")
    channel: str = strawberry.field(
        default="WECHAT", description="The front end logging in (its profile's session channel): WECHAT or ELDERLY."
    )


@strawberry.input
class AlipayLoginInput:
    auth_code: str = strawberry.field(description="The authCode from my.getAuthCode().")
    channel: str = strawberry.field(default="ALIPAY", description="The front end logging in: ALIPAY.")


@strawberry.input
class PasswordLoginInput:
    username: str
    password: str
    channel: str = strawberry.field(
        default="DOCTOR_H5",
        description="The staff front end logging in: DOCTOR_H5, PHARMACIST_WORKBENCH or OPS_DASHBOARD; "
        "the account's role must be one it serves.",
    )
    totp_code: str | None = strawberry.field(
        default=None,
        description="The current 6-digit code of the authenticator app, for accounts with a second factor "
        "(operators must have one in production). Each code is accepted once.",
    )


@strawberry.type
class LogoutPayload:
    ok: bool


@strawberry.input
class ChangePasswordInput:
    current: str
    new: str


@strawberry.type(description="The password is changed; the account's other sessions have ended.")
class PasswordChanged:
    changed_at: dt.datetime


ChangePasswordPayload = Annotated[
    PasswordChanged | WeakPasswordError | InvalidInputError | AccountLockedError,
    strawberry.union("ChangePasswordPayload"),
]


@strawberry.type(
    description="Show `otpauthUri` as a QR code for the authenticator app (or `secret` to type in), then "
    "confirm with the first code the app shows. This is the only time the secret leaves the BFF."
)
class SecondFactorEnrollment:
    otpauth_uri: str
    secret: str
    issuer: str
    account_name: str


BeginSecondFactorEnrollmentPayload = Annotated[
    SecondFactorEnrollment | NotAllowedError, strawberry.union("BeginSecondFactorEnrollmentPayload")
]


@strawberry.input
class ConfirmSecondFactorInput:
    code: str = strawberry.field(description="The code the authenticator app shows now.")


@strawberry.type(description="From now on every login of this account needs a code from the app.")
class SecondFactorConfirmed:
    confirmed_at: dt.datetime


ConfirmSecondFactorPayload = Annotated[
    SecondFactorConfirmed | SecondFactorRejectedError | NotAllowedError,
    strawberry.union("ConfirmSecondFactorPayload"),
]


def _success(result: identity.LoginResult) -> LoginSuccess:
    return LoginSuccess(
        token=result.token,
        expires_at=result.expires_at,
        account=Account.of(result.viewer),
        new_account=result.new_account,
    )


@strawberry.type
class IdentityMutation:
    @strawberry.mutation(description="Patients in the WeChat mini-program.")
    async def login_with_wechat(self, info: Ctx, input: WechatLoginInput) -> LoginPayload:
        deps = info.context.deps
        try:
            app = identity.front_end(deps.front_ends, input.channel, WECHAT)
            result = await identity.login_with_channel(
                deps.db, deps.sources.channels, deps.clock, deps.sessions, app=app, code=input.code
            )
        except DomainError as exc:
            return user_error(exc)
        return _success(result)

    @strawberry.mutation(description="Patients in the Alipay mini-program.")
    async def login_with_alipay(self, info: Ctx, input: AlipayLoginInput) -> LoginPayload:
        deps = info.context.deps
        try:
            app = identity.front_end(deps.front_ends, input.channel, ALIPAY)
            result = await identity.login_with_channel(
                deps.db, deps.sources.channels, deps.clock, deps.sessions, app=app, code=input.auth_code
            )
        except DomainError as exc:
            return user_error(exc)
        return _success(result)

    @strawberry.mutation(description="Doctors, pharmacists and operators.")
    async def login_with_password(self, info: Ctx, input: PasswordLoginInput) -> LoginPayload:
        deps = info.context.deps
        try:
            app = identity.front_end(deps.front_ends, input.channel, identity.PASSWORD)
            result = await identity.login_with_password(
                deps.db,
                deps.clock,
                deps.sessions,
                cipher=deps.cipher,
                audit=deps.audit,
                username=input.username,
                password=input.password,
                app=app,
                totp_code=input.totp_code,
                request_id=info.context.request_id,
            )
        except DomainError as exc:
            return user_error(exc)
        return _success(result)

    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Ends this session at once.")
    async def logout(self, info: Ctx) -> LogoutPayload:
        await sessions.log_out(info.context.deps, info.context.viewer)
        return LogoutPayload(ok=True)

    @strawberry.mutation(
        permission_classes=[IsStaff],
        description="Staff change their own password; the account's other sessions end.",
    )
    async def change_password(self, info: Ctx, input: ChangePasswordInput) -> ChangePasswordPayload:
        try:
            changed_at = await sessions.change_password(
                info.context.deps,
                info.context.viewer,
                current=input.current,
                new=input.new,
                request_id=info.context.request_id,
            )
        except DomainError as exc:
            return user_error(exc)
        return PasswordChanged(changed_at=changed_at)

    @strawberry.mutation(
        permission_classes=[IsStaff],
        description="Staff add a TOTP authenticator app (RFC 6238: SHA-1, 6 digits, 30 s) as second factor.",
    )
    async def begin_second_factor_enrollment(self, info: Ctx) -> BeginSecondFactorEnrollmentPayload:
        deps = info.context.deps
        try:
            enrollment = await second_factor.begin_enrollment(
                deps.db, deps.cipher, account_id=info.context.viewer.account_id or 0, issuer=deps.sessions.totp_issuer
            )
        except DomainError as exc:
            return user_error(exc)
        return SecondFactorEnrollment(
            otpauth_uri=enrollment.uri,
            secret=enrollment.secret,
            issuer=enrollment.issuer,
            account_name=enrollment.account_name,
        )

    @strawberry.mutation(permission_classes=[IsStaff], description="Activates the factor with its first code.")
    async def confirm_second_factor(self, info: Ctx, input: ConfirmSecondFactorInput) -> ConfirmSecondFactorPayload:
        deps = info.context.deps
        try:
            confirmed_at = await second_factor.confirm(
                deps.db, deps.cipher, deps.clock, account_id=info.context.viewer.account_id or 0, code=input.code
            )
        except DomainError as exc:
            return user_error(exc)
        return SecondFactorConfirmed(confirmed_at=confirmed_at)
