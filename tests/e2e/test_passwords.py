"""Staff password rules (等保三级 身份鉴别): at least 10 characters, 3 of 4 character classes, not
containing the username, not the current one; changing one's password ends the other sessions."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from bff.demo import LOGINS
from datasources.clock import FixedClock
from datasources.store.models import StaffCredential
from resolvers import passwords
from resolvers.errors import WeakPassword
from resolvers.identity import DOCTOR, create_staff
from tests.conftest import LiveServer

CURRENT = "Ward-Round-77"
LOGIN = """
mutation ($u: String!, $p: String!) {
  loginWithPassword(input: {username: $u, password: $p}) {
    __typename ... on LoginSuccess { token } ... on AccountLockedError { until } ... on UserError { code message }
  }
}"""
CHANGE = """
mutation ($current: String!, $new: String!) {
  changePassword(input: {current: $current, new: $new}) {
    __typename
    ... on PasswordChanged { changedAt }
    ... on WeakPasswordError { problems }
    ... on InvalidInputError { field }
    ... on AccountLockedError { until }
    ... on UserError { code message }
  }
}"""
ME = "{ me { account { role } } }"


async def _doctor(server: LiveServer, clock: FixedClock, username: str = "dr.sun") -> str:
    await create_staff(server.deps.db, clock, role=DOCTOR, username=username, password=CURRENT, display_name="Sun")
    return await _login(server, username, CURRENT)


async def _login(server: LiveServer, username: str, password: str) -> str:
    result = (await server.client().execute(LOGIN, {"u": username, "p": password}))["loginWithPassword"]
    assert result["__typename"] == "LoginSuccess", result
    return str(result["token"])


async def _change(server: LiveServer, token: str, current: str, new: str) -> dict[str, Any]:
    return (await server.client(token).execute(CHANGE, {"current": current, "new": new}))["changePassword"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("new", "problems"),
    [
        ("Sh0rt-pw", ["TOO_SHORT"]),
        ("alllowercaseletters", ["TOO_FEW_CHARACTER_CLASSES"]),
        ("lowercase and spaces", ["TOO_FEW_CHARACTER_CLASSES"]),
        ("Dr.Sun-Night-2026", ["CONTAINS_USERNAME"]),
        (CURRENT, ["SAME_AS_CURRENT"]),
        ("dr.sun", ["TOO_SHORT", "TOO_FEW_CHARACTER_CLASSES", "CONTAINS_USERNAME"]),
    ],
    ids=["too-short", "one-class", "two-classes", "contains-username", "same-as-current", "several"],
)
async def test_a_weak_new_password_is_refused_with_each_broken_rule(
    server: LiveServer, clock: FixedClock, new: str, problems: list[str]
) -> None:
    token = await _doctor(server, clock)
    refused = await _change(server, token, CURRENT, new)
    assert refused["__typename"] == "WeakPasswordError"
    assert (refused["code"], refused["problems"]) == ("WEAK_PASSWORD", problems)
    assert refused["message"].startswith("The new password must be")
    await _login(server, "dr.sun", CURRENT)  # unchanged


async def test_a_good_new_password_replaces_the_old_one_and_ends_the_other_sessions(
    server: LiveServer, clock: FixedClock
) -> None:
    token = await _doctor(server, clock)
    elsewhere = await _login(server, "dr.sun", CURRENT)
    assert (await server.client(elsewhere).execute(ME))["me"]["account"]["role"] == "DOCTOR"  # cached now
    clock.advance(minutes=1)
    changed = await _change(server, token, CURRENT, "Quiet Ward 2027")
    assert changed["__typename"] == "PasswordChanged"
    assert (await server.client(token).execute(ME))["me"]["account"]["role"] == "DOCTOR"  # this session stays
    ended = (await server.client(elsewhere).post(ME)).json()
    assert ended["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    old = (await server.client().execute(LOGIN, {"u": "dr.sun", "p": CURRENT}))["loginWithPassword"]
    assert old["__typename"] == "LoginFailedError"
    await _login(server, "dr.sun", "Quiet Ward 2027")
    async with server.deps.db.reading() as s:
        credential = (await s.execute(select(StaffCredential))).scalar_one()
    assert credential.password_changed_at == clock.now()


async def test_a_wrong_current_password_is_refused_and_counts_toward_the_lockout(
    server: LiveServer, clock: FixedClock
) -> None:
    token = await _doctor(server, clock)
    for _ in range(4):
        wrong = await _change(server, token, "Not-Current-1", "Quiet Ward 2027")
        assert (wrong["__typename"], wrong["field"]) == ("InvalidInputError", "current")
    locked = await _change(server, token, "Not-Current-1", "Quiet Ward 2027")
    assert locked["__typename"] == "AccountLockedError"
    login = (await server.client().execute(LOGIN, {"u": "dr.sun", "p": CURRENT}))["loginWithPassword"]
    assert login["__typename"] == "AccountLockedError"


async def test_patients_have_no_password_to_change(server: LiveServer) -> None:
    response = (await server.client().post(CHANGE, {"current": "x", "new": "y"})).json()
    assert response["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_staff_accounts_are_created_only_with_a_strong_password(server: LiveServer, clock: FixedClock) -> None:
    with pytest.raises(WeakPassword) as weak:
        await create_staff(server.deps.db, clock, role=DOCTOR, username="dr.ma", password="dr.ma-26", display_name="M")
    assert weak.value.problems == ["TOO_SHORT", "CONTAINS_USERNAME"]
    await create_staff(
        server.deps.db, clock, role=DOCTOR, username="dr.ma", password="Clinic-Ma-2026", display_name="M"
    )


def test_the_demo_staff_passwords_meet_the_rules() -> None:
    staff = [re.search(r'username: "([^"]+)", password: "([^"]+)"', login.how) for login in LOGINS]
    found = [(m.group(1), m.group(2)) for m in staff if m]
    assert {u for u, _ in found} == {"doctor", "pharmacist", "operator"}
    for username, password in found:
        assert passwords.problems(password, username=username) == [], username
