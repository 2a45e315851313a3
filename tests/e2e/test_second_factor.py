"""The staff second factor (TOTP): enrolling an authenticator app, logging in with its codes, each
code good once, wrong codes counting toward the lockout, operators refused without one in production."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from sqlalchemy import select
from sqlmodel import col

from bff.app import create_app
from datasources.clock import FixedClock
from datasources.store.models import StaffCredential
from resolvers.identity import DOCTOR, OPERATOR, create_staff
from tests.conftest import DatabaseTarget, LiveServer, make_settings

PASSWORD = "Night-Shift-42"
LOGIN = """
mutation ($u: String!, $p: String!, $c: String! = "OPS_DASHBOARD", $code: String) {
  loginWithPassword(input: {username: $u, password: $p, channel: $c, totpCode: $code}) {
    __typename
    ... on LoginSuccess { token account { role } }
    ... on AccountLockedError { until }
    ... on UserError { code message }
  }
}"""
BEGIN = """
mutation { beginSecondFactorEnrollment {
  __typename
  ... on SecondFactorEnrollment { otpauthUri secret issuer accountName }
  ... on NotAllowedError { reason }
  ... on UserError { code message }
} }"""
CONFIRM = """
mutation ($code: String!) { confirmSecondFactor(input: {code: $code}) {
  __typename
  ... on SecondFactorConfirmed { confirmedAt }
  ... on NotAllowedError { reason }
  ... on UserError { code message }
} }"""


def code_at(secret: str, when: datetime) -> str:
    """What the authenticator app shows at ``when`` for the base32 ``secret``."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    return TOTP(key, 6, SHA1(), 30).generate(when.timestamp()).decode()  # noqa: S303


async def login(server: LiveServer, username: str, code: str | None = None, **more: Any) -> dict[str, Any]:
    variables = {"u": username, "p": PASSWORD, "code": code, **more}
    return (await server.client().execute(LOGIN, variables))["loginWithPassword"]  # type: ignore[no-any-return]


async def operator_with_factor(server: LiveServer, clock: FixedClock, username: str = "ops.zhou") -> str:
    """An operator who enrolled and confirmed an authenticator app; returns its base32 secret.
    The confirming code's step is used up: the next login needs the next step's code."""
    await create_staff(server.deps.db, clock, role=OPERATOR, username=username, password=PASSWORD, display_name="Z")
    session = await login(server, username)
    assert session["__typename"] == "LoginSuccess", session
    client = server.client(session["token"])
    enrollment = (await client.execute(BEGIN))["beginSecondFactorEnrollment"]
    assert enrollment["__typename"] == "SecondFactorEnrollment", enrollment
    confirmed = await client.execute(CONFIRM, {"code": code_at(enrollment["secret"], clock.now())})
    assert confirmed["confirmSecondFactor"]["__typename"] == "SecondFactorConfirmed"
    return str(enrollment["secret"])


async def test_an_operator_enrolls_an_authenticator_app_and_from_then_on_logs_in_with_its_codes(
    server: LiveServer, clock: FixedClock
) -> None:
    await create_staff(server.deps.db, clock, role=OPERATOR, username="ops.wu", password=PASSWORD, display_name="W")
    session = await login(server, "ops.wu")  # development: no factor yet, let in (and logged as such)
    assert session["__typename"] == "LoginSuccess"
    client = server.client(session["token"])
    enrollment = (await client.execute(BEGIN))["beginSecondFactorEnrollment"]
    secret = enrollment["secret"]
    assert enrollment["otpauthUri"].startswith("otpauth://totp/Hospital%20BFF:ops.wu?")
    assert f"secret={secret}" in enrollment["otpauthUri"]
    assert "period=30" in enrollment["otpauthUri"] and "digits=6" in enrollment["otpauthUri"]
    assert (enrollment["issuer"], enrollment["accountName"]) == ("Hospital BFF", "ops.wu")
    async with server.deps.db.reading() as s:
        stored = (
            await s.execute(select(StaffCredential).where(col(StaffCredential.username) == "ops.wu"))
        ).scalar_one()
    assert stored.totp_secret_enc is not None and stored.totp_secret_enc.startswith("enc1:")
    assert secret not in stored.totp_secret_enc and stored.totp_confirmed_at is None
    assert (await login(server, "ops.wu"))["__typename"] == "LoginSuccess"  # not active before confirmation

    wrong = (await client.execute(CONFIRM, {"code": "000000"}))["confirmSecondFactor"]
    assert (wrong["__typename"], wrong["code"]) == ("SecondFactorRejectedError", "SECOND_FACTOR_INVALID")
    confirmed = (await client.execute(CONFIRM, {"code": code_at(secret, clock.now())}))["confirmSecondFactor"]
    assert confirmed["__typename"] == "SecondFactorConfirmed"

    missing = await login(server, "ops.wu")
    assert (missing["__typename"], missing["code"]) == ("SecondFactorRequiredError", "SECOND_FACTOR_REQUIRED")
    clock.advance(seconds=30)
    ok = await login(server, "ops.wu", code_at(secret, clock.now()))
    assert (ok["__typename"], ok["account"]["role"]) == ("LoginSuccess", "OPERATOR")


async def test_a_code_is_accepted_once(server: LiveServer, clock: FixedClock) -> None:
    secret = await operator_with_factor(server, clock)
    used_to_confirm = code_at(secret, clock.now())
    again = await login(server, "ops.zhou", used_to_confirm)
    assert (again["__typename"], again["code"]) == ("SecondFactorRejectedError", "SECOND_FACTOR_REUSED")
    clock.advance(seconds=30)
    code = code_at(secret, clock.now())
    assert (await login(server, "ops.zhou", code))["__typename"] == "LoginSuccess"
    replayed = await login(server, "ops.zhou", code)
    assert replayed["code"] == "SECOND_FACTOR_REUSED"
    clock.advance(seconds=30)
    earlier = code_at(secret, clock.now() - timedelta(seconds=60))  # older than the last one used
    assert (await login(server, "ops.zhou", earlier))["code"] in {"SECOND_FACTOR_REUSED", "SECOND_FACTOR_INVALID"}


@pytest.mark.parametrize(("drift_s", "accepted"), [(-30, True), (30, True), (-60, False), (60, False)])
async def test_one_step_of_clock_drift_is_allowed_either_way(
    server: LiveServer, clock: FixedClock, drift_s: int, accepted: bool
) -> None:
    secret = await operator_with_factor(server, clock)
    clock.advance(minutes=5)
    result = await login(server, "ops.zhou", code_at(secret, clock.now() + timedelta(seconds=drift_s)))
    assert (result["__typename"] == "LoginSuccess") is accepted, result
    if not accepted:
        assert result["code"] == "SECOND_FACTOR_INVALID"


async def test_wrong_and_reused_codes_count_toward_the_lockout_with_wrong_passwords(
    server: LiveServer, clock: FixedClock
) -> None:
    secret = await operator_with_factor(server, clock)
    used = code_at(secret, clock.now())
    clock.advance(seconds=30)
    wrong_password = await server.client().execute(LOGIN, {"u": "ops.zhou", "p": "Not-The-Password-1"})
    assert wrong_password["loginWithPassword"]["__typename"] == "LoginFailedError"
    for code in ("123456", "654321", "not a code"):
        assert (await login(server, "ops.zhou", code))["code"] == "SECOND_FACTOR_INVALID"
    locked = await login(server, "ops.zhou", used)  # the fifth failure: a replayed code
    assert locked["__typename"] == "AccountLockedError"
    still = await login(server, "ops.zhou", code_at(secret, clock.now()))
    assert still["__typename"] == "AccountLockedError"
    clock.advance(minutes=16)
    assert (await login(server, "ops.zhou", code_at(secret, clock.now())))["__typename"] == "LoginSuccess"
    failures = [e.detail for e in await server.deps.audit.read(server.deps.db, action="login.failed")]
    assert [d["reason"] for d in failures] == ["password", "totp", "totp", "totp", "totp-reused"]
    assert [d["locked"] for d in failures] == [False] * 4 + [True]


async def test_a_missing_code_is_asked_for_and_does_not_count_as_a_failure(
    server: LiveServer, clock: FixedClock
) -> None:
    secret = await operator_with_factor(server, clock)
    for _ in range(6):
        assert (await login(server, "ops.zhou"))["code"] == "SECOND_FACTOR_REQUIRED"
    clock.advance(seconds=30)
    assert (await login(server, "ops.zhou", code_at(secret, clock.now())))["__typename"] == "LoginSuccess"


async def test_a_confirmed_factor_cannot_be_replaced_from_a_session_and_patients_have_none(
    server: LiveServer, clock: FixedClock
) -> None:
    secret = await operator_with_factor(server, clock)
    clock.advance(seconds=30)
    token = (await login(server, "ops.zhou", code_at(secret, clock.now())))["token"]
    refused = (await server.client(token).execute(BEGIN))["beginSecondFactorEnrollment"]
    assert (refused["__typename"], refused["reason"]) == ("NotAllowedError", "ALREADY_ENROLLED")
    response = (await server.client().post(BEGIN)).json()
    assert response["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_doctor_who_enrolled_needs_the_code_too(server: LiveServer, clock: FixedClock) -> None:
    await create_staff(server.deps.db, clock, role=DOCTOR, username="dr.he", password=PASSWORD, display_name="He")
    token = (await login(server, "dr.he", c="DOCTOR_H5"))["token"]
    secret = (await server.client(token).execute(BEGIN))["beginSecondFactorEnrollment"]["secret"]
    await server.client(token).execute(CONFIRM, {"code": code_at(secret, clock.now())})
    assert (await login(server, "dr.he", c="DOCTOR_H5"))["code"] == "SECOND_FACTOR_REQUIRED"


@pytest.fixture
async def production(database: DatabaseTarget, tmp_path: Path, clock: FixedClock) -> AsyncIterator[LiveServer]:
    # Served over plain HTTP on loopback, by an unsigned client: the redirect to HTTPS and the
    # signature requirement are switched off for the test.
    settings = make_settings(
        database, tmp_path, environment="production", https_redirect=False, request_signatures="optional"
    )
    live = await LiveServer(create_app(settings, clock=clock), settings).start()
    yield live
    await live.stop()


async def test_in_production_an_operator_without_a_second_factor_is_refused_and_other_staff_are_not(
    production: LiveServer, clock: FixedClock
) -> None:
    db = production.deps.db
    await create_staff(db, clock, role=OPERATOR, username="ops.new", password=PASSWORD, display_name="N")
    await create_staff(db, clock, role=DOCTOR, username="dr.new", password=PASSWORD, display_name="D")
    refused = await login(production, "ops.new")
    assert (refused["__typename"], refused["code"]) == ("SecondFactorNotEnrolledError", "SECOND_FACTOR_NOT_ENROLLED")
    assert "totp-enroll" in refused["message"]
    wrong_password = await production.client().execute(LOGIN, {"u": "ops.new", "p": "Wrong-Password-1"})
    assert wrong_password["loginWithPassword"]["__typename"] == "LoginFailedError"  # no hint without the password
    assert (await login(production, "dr.new", c="DOCTOR_H5"))["__typename"] == "LoginSuccess"
