"""Logging in through each channel, staff passwords with lockout, and sessions that end."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from datasources.channels.contract import ALIPAY, WECHAT
from datasources.clock import FixedClock
from datasources.store.audit_chain import verify
from datasources.store.models import AuthSession
from resolvers.identity import DOCTOR, OPERATOR, create_staff
from tests.conftest import LiveServer
from tests.factories import LOGIN, Hospital

ALIPAY_LOGIN = """
mutation ($code: String!) {
  loginWithAlipay(input: {authCode: $code}) { __typename ... on LoginSuccess { token account { id role } } }
}"""
PASSWORD_LOGIN = """
mutation ($u: String!, $p: String!, $c: String! = "DOCTOR_H5") {
  loginWithPassword(input: {username: $u, password: $p, channel: $c}) {
    __typename
    ... on LoginSuccess { token account { role permissions } }
    ... on AccountLockedError { until message }
    ... on UserError { code message }
  }
}"""
ME = "{ me { account { id role displayName } } }"
LOGOUT = "mutation { logout { ok } }"


async def _login(server: LiveServer, code: str) -> dict:  # type: ignore[type-arg]
    return (await server.client().execute(LOGIN, {"code": code}))["loginWithWechat"]


async def test_a_wechat_login_code_finds_the_same_account_each_time_and_works_once(server: LiveServer) -> None:
    hospital = Hospital(server.deps.db, server.deps.clock)
    first_code = await hospital.channels.issue_code(WECHAT, "openid-abc")
    first = await _login(server, first_code)
    again = await _login(server, await hospital.channels.issue_code(WECHAT, "openid-abc"))
    assert first["__typename"] == again["__typename"] == "LoginSuccess"
    assert first["account"]["id"] == again["account"]["id"]
    reused = await _login(server, first_code)
    assert reused == {"__typename": "LoginFailedError", "message": reused["message"], "code": "LOGIN_FAILED"}
    me = await server.client(first["token"]).execute(ME)
    assert me["me"]["account"]["role"] == "PATIENT"


async def test_an_expired_login_code_is_refused(server: LiveServer, clock: FixedClock) -> None:
    code = await Hospital(server.deps.db, clock).channels.issue_code(WECHAT, "openid-late")
    clock.advance(minutes=6)
    assert (await _login(server, code))["__typename"] == "LoginFailedError"


async def test_an_alipay_account_is_another_account_than_a_wechat_one(server: LiveServer) -> None:
    hospital = Hospital(server.deps.db, server.deps.clock)
    wechat = await _login(server, await hospital.channels.issue_code(WECHAT, "same-subject"))
    code = await hospital.channels.issue_code(ALIPAY, "same-subject")
    alipay = (await server.client().execute(ALIPAY_LOGIN, {"code": code}))["loginWithAlipay"]
    assert alipay["__typename"] == "LoginSuccess"
    assert alipay["account"]["id"] != wechat["account"]["id"]


async def test_staff_are_locked_out_after_five_wrong_passwords_then_let_in_again(
    server: LiveServer, clock: FixedClock
) -> None:
    await create_staff(
        server.deps.db, clock, role=DOCTOR, username="dr.wang", password="correct horse 42", display_name="Dr Wang"
    )
    client = server.client()
    for _ in range(4):
        wrong = (await client.execute(PASSWORD_LOGIN, {"u": "dr.wang", "p": "guess"}))["loginWithPassword"]
        assert wrong["__typename"] == "LoginFailedError"
    locked = (await client.execute(PASSWORD_LOGIN, {"u": "dr.wang", "p": "guess"}))["loginWithPassword"]
    assert locked["__typename"] == "AccountLockedError"
    still = (await client.execute(PASSWORD_LOGIN, {"u": "dr.wang", "p": "correct horse 42"}))["loginWithPassword"]
    assert still["__typename"] == "AccountLockedError"
    clock.advance(minutes=16)
    ok = (await client.execute(PASSWORD_LOGIN, {"u": "dr.wang", "p": "correct horse 42"}))["loginWithPassword"]
    assert ok["__typename"] == "LoginSuccess"
    assert ok["account"]["role"] == "DOCTOR"
    events = await server.deps.audit.read(server.deps.db)
    assert [e.action for e in events] == ["login.failed"] * 5 + ["login"]
    assert {e.target_id for e in events} == {str(events[-1].actor_account_id)}
    assert events[-1].detail["channel"] == "DOCTOR_H5" and events[-2].detail["locked"] is True
    assert (await verify(server.deps.db, server.deps.audit.keyring)).ok


async def test_an_unknown_username_fails_like_a_wrong_password(server: LiveServer) -> None:
    result = (await server.client().execute(PASSWORD_LOGIN, {"u": "nobody", "p": "x" * 12}))["loginWithPassword"]
    assert result["__typename"] == "LoginFailedError"
    assert result["message"] == "Wrong username or password."


async def test_operators_get_permissions_only_through_their_roles(server: LiveServer, clock: FixedClock) -> None:
    await create_staff(
        server.deps.db,
        clock,
        role=OPERATOR,
        username="ops",
        password="operator pass 1",
        display_name="Ops",
        operator_roles={"front-desk": ["registrations.read"]},
    )
    await create_staff(
        server.deps.db, clock, role=OPERATOR, username="newbie", password="operator pass 2", display_name="N"
    )
    ops = "OPS_DASHBOARD"
    lead = await server.client().execute(PASSWORD_LOGIN, {"u": "ops", "p": "operator pass 1", "c": ops})
    lead = lead["loginWithPassword"]
    newbie = await server.client().execute(PASSWORD_LOGIN, {"u": "newbie", "p": "operator pass 2", "c": ops})
    newbie = newbie["loginWithPassword"]
    assert lead["account"]["permissions"] == ["registrations.read"]
    assert newbie["account"]["permissions"] == []


async def test_a_session_ends_when_idle_too_long(server: LiveServer, clock: FixedClock) -> None:
    hospital = Hospital(server.deps.db, clock)
    token = (await _login(server, await hospital.channels.issue_code(WECHAT, "idle")))["token"]
    clock.advance(minutes=119)
    assert (await server.client(token).execute(ME))["me"]["account"]["role"] == "PATIENT"
    clock.advance(minutes=119)  # active a moment ago: still in
    assert (await server.client(token).execute(ME))["me"]["account"]["role"] == "PATIENT"
    clock.advance(minutes=121)
    response = (await server.client(token).post(ME)).json()
    assert response["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "expired" in response["errors"][0]["message"]


async def test_a_session_ends_at_its_absolute_limit_even_when_active(server: LiveServer, clock: FixedClock) -> None:
    hospital = Hospital(server.deps.db, clock)
    token = (await _login(server, await hospital.channels.issue_code(WECHAT, "busy")))["token"]
    for _ in range(72 // 2):
        clock.advance(hours=2)
        await server.client(token).post(ME)
    response = (await server.client(token).post(ME)).json()
    assert response["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_logout_ends_the_session_at_once(server: LiveServer) -> None:
    hospital = Hospital(server.deps.db, server.deps.clock)
    token = (await _login(server, await hospital.channels.issue_code(WECHAT, "bye")))["token"]
    client = server.client(token)
    assert (await client.execute(LOGOUT))["logout"]["ok"] is True
    response = (await client.post(ME)).json()
    assert response["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "logged out" in response["errors"][0]["message"]


async def test_staff_open_sessions_only_in_a_front_end_that_serves_their_role(
    server: LiveServer, clock: FixedClock
) -> None:
    await create_staff(
        server.deps.db, clock, role=DOCTOR, username="dr.li", password="doctor pass 12", display_name="Li"
    )
    client = server.client()
    wrong_app = {"u": "dr.li", "p": "doctor pass 12", "c": "OPS_DASHBOARD"}
    refused = (await client.execute(PASSWORD_LOGIN, wrong_app))["loginWithPassword"]
    assert refused["__typename"] == "LoginFailedError"
    assert "cannot use this app" in refused["message"]
    unknown = (await client.execute(PASSWORD_LOGIN, {**wrong_app, "c": "WECHAT"}))["loginWithPassword"]
    assert unknown["__typename"] == "InvalidInputError"
    assert "DOCTOR_H5" in unknown["message"] and "OPS_DASHBOARD" in unknown["message"]
    ok = (await client.execute(PASSWORD_LOGIN, {**wrong_app, "c": "DOCTOR_H5"}))["loginWithPassword"]
    assert ok["__typename"] == "LoginSuccess"


ELDERLY_LOGIN = """
mutation ($code: String!) {
  loginWithWechat(input: {code: $code, channel: "ELDERLY"}) { __typename ... on LoginSuccess { token account { id } } }
}"""


async def test_the_elderly_mode_is_the_same_wechat_account_in_its_own_front_end(server: LiveServer) -> None:
    hospital = Hospital(server.deps.db, server.deps.clock)
    standard = await _login(server, await hospital.channels.issue_code(WECHAT, "grandma"))
    elderly = await server.client().execute(
        ELDERLY_LOGIN, {"code": await hospital.channels.issue_code(WECHAT, "grandma")}
    )
    elderly = elderly["loginWithWechat"]
    assert elderly["account"]["id"] == standard["account"]["id"]
    async with server.deps.db.reading() as s:
        channels = (await s.execute(select(AuthSession.channel).order_by(AuthSession.id))).scalars().all()
    assert channels == ["WECHAT", "ELDERLY"]


async def test_a_busy_session_records_its_use_in_the_background_before_its_cached_copy_lapses(
    server: LiveServer, clock: FixedClock
) -> None:
    hospital = Hospital(server.deps.db, clock)
    token = (await _login(server, await hospital.channels.issue_code(WECHAT, "steady")))["token"]
    client = server.client(token)

    async def last_seen() -> object:
        async with server.deps.db.reading() as s:
            return (await s.execute(select(AuthSession.last_seen_at))).scalar_one()

    logged_in_at = await last_seen()
    clock.advance(seconds=50)  # the cached copy is usable for 60 s; from 45 s on it is refreshed ahead
    assert (await client.execute(ME))["me"]["account"]["role"] == "PATIENT"
    for _ in range(100):  # the refresh runs after the answer, without the request waiting on it
        if await last_seen() != logged_in_at:
            break
        await asyncio.sleep(0.02)
    assert await last_seen() == clock.now()
    clock.advance(seconds=50)  # 100 s after login, 50 s after the recorded use: still served from the cache
    assert (await client.execute(ME))["me"]["account"]["role"] == "PATIENT"
