"""Logins and sessions."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import strawberry

from datasources.channels.contract import ALIPAY, WECHAT
from resolvers import identity, sessions
from resolvers.errors import DomainError
from schema.common import AccountLockedError, Ctx, InvalidInputError, LoginFailedError, ServiceUnavailableError
from schema.enums import Role
from schema.errors import user_error
from schema.permissions import IsAuthenticated


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
    LoginSuccess | LoginFailedError | AccountLockedError | InvalidInputError | ServiceUnavailableError,
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


@strawberry.type
class LogoutPayload:
    ok: bool


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
                username=input.username,
                password=input.password,
                app=app,
                request_id=info.context.request_id,
            )
        except DomainError as exc:
            return user_error(exc)
        return _success(result)

    @strawberry.mutation(permission_classes=[IsAuthenticated], description="Ends this session at once.")
    async def logout(self, info: Ctx) -> LogoutPayload:
        await sessions.log_out(info.context.deps, info.context.viewer)
        return LogoutPayload(ok=True)
