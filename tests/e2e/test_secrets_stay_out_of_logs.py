"""Session tokens, passwords and second-factor secrets never reach a log, even with every logger of
the process at DEBUG (SQL statements and their parameters, uvicorn, WebSocket frames included)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import websockets

from datasources.channels.contract import WECHAT
from datasources.clock import FixedClock
from resolvers.identity import OPERATOR, create_staff
from tests.conftest import LiveServer
from tests.e2e.test_second_factor import BEGIN, CONFIRM, LOGIN, PASSWORD, code_at
from tests.factories import LOGIN as WECHAT_LOGIN
from tests.factories import Hospital

ME = "{ me { account { id role } } }"
LOGOUT = "mutation { logout { ok } }"
CHANGE = """
mutation ($current: String!, $new: String!) {
  changePassword(input: {current: $current, new: $new}) { __typename ... on UserError { code } }
}"""
NEW_PASSWORD = "Quiet-Ward-2027"
# The test's own client library logs the frames it sends: that is the caller's side, not the BFF's.
CLIENT_SIDE = ("websockets.client",)
# At DEBUG the database drivers log every SQL parameter: ciphertexts, and the plaintext of the
# sandboxes' own tables (they stand in for remote systems). This test reads them for tokens,
# passwords and secrets; they are kept from the run-wide log scan (tests/log_hygiene.py), which
# holds the logs a deployment keeps to a stricter rule and never sees these loggers at DEBUG.
SQL_LOGGERS = ("sqlalchemy", "aiosqlite", "asyncpg")


@contextmanager
def every_logger_at_debug(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """DEBUG on the root and every logger that exists, and the capture attached to the loggers
    whose records do not reach the root (uvicorn's, and the SQL loggers held back here)."""
    caplog.set_level(logging.DEBUG)
    attached: list[tuple[logging.Logger, bool]] = []
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            caplog.set_level(logging.DEBUG, logger=name)
            if not logger.propagate or name.split(".")[0] in SQL_LOGGERS:
                attached.append((logger, logger.propagate))
                logger.addHandler(caplog.handler)
                logger.propagate = False
    try:
        yield
    finally:
        for logger, propagate in attached:
            logger.removeHandler(caplog.handler)
            logger.propagate = propagate


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(r) for r in caplog.records if not r.name.startswith(CLIENT_SIDE))


async def test_logins_second_factor_and_logout_leave_no_token_password_or_secret_in_the_logs(
    server: LiveServer, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    await create_staff(server.deps.db, clock, role=OPERATOR, username="ops.log", password=PASSWORD, display_name="L")
    code = await Hospital(server.deps.db, clock).channels.issue_code(WECHAT, "openid-logged")
    secrets: list[str] = [PASSWORD, NEW_PASSWORD]
    with every_logger_at_debug(caplog):
        patient = (await server.client().execute(WECHAT_LOGIN, {"code": code}))["loginWithWechat"]["token"]
        secrets.append(patient)
        await server.client(patient).execute(ME)
        ws_url = server.url.replace("http", "ws", 1) + "/graphql"
        async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
            init = {"type": "connection_init", "payload": {"authorization": f"Bearer {patient}"}}
            await ws.send(json.dumps(init))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
        assert (await server.client(patient).execute(LOGOUT))["logout"]["ok"] is True
        refused = (await server.client(patient).post(ME)).json()  # a revoked token, sent again
        assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

        wrong = await server.client().execute(LOGIN, {"u": "ops.log", "p": PASSWORD + "x"})
        assert wrong["loginWithPassword"]["__typename"] == "LoginFailedError"
        operator = (await server.client().execute(LOGIN, {"u": "ops.log", "p": PASSWORD}))["loginWithPassword"]
        secrets.append(operator["token"])
        client = server.client(operator["token"])
        secret = (await client.execute(BEGIN))["beginSecondFactorEnrollment"]["secret"]
        secrets.append(secret)
        await client.execute(CONFIRM, {"code": code_at(secret, clock.now())})
        clock.advance(seconds=30)
        again = {"u": "ops.log", "p": PASSWORD, "code": code_at(secret, clock.now())}
        second = (await server.client().execute(LOGIN, again))["loginWithPassword"]
        secrets.append(second["token"])
        changed = await server.client(second["token"]).execute(CHANGE, {"current": PASSWORD, "new": NEW_PASSWORD})
        assert changed["changePassword"]["__typename"] == "PasswordChanged"
        assert (await server.client(second["token"]).execute(LOGOUT))["logout"]["ok"] is True

    logged = _logged(caplog)
    assert len(caplog.records) > 50, "the capture saw the server at work"
    assert "logged in without a second factor" in logged
    leaked = [s[:6] + "…" for s in secrets if s in logged or s[-12:] in logged]
    assert leaked == []
    assert "TEXT frame [" in logged  # the WebSocket frames were logged, without their payloads
