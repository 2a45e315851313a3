"""The demo hospital that `make run` loads: its patients can be logged into and have money to move."""

from __future__ import annotations

from bff.demo import load
from bff.keys import field_cipher
from bff.settings import Settings
from datasources.clock import FixedClock
from datasources.store.db import Database
from tests.conftest import LiveServer

LOGIN = """
mutation ($code: String!) { loginWithWechat(input: {code: $code}) { __typename ... on LoginSuccess { token } } }"""
MONEY = """
{ me { patients { id name } pendingBills { title total { fen } items { name } } } }"""
DEPOSITS = "query ($id: ID!) { me { depositAccounts(patientId: $id) { kind arrears { fen } } } }"


async def test_the_demo_patients_have_bills_to_pay_and_the_defaulter_owes(
    server: LiveServer, settings: Settings, clock: FixedClock
) -> None:
    db = Database(settings.database_url, schema=settings.database_schema)
    try:
        assert await load(db, await field_cipher(settings, db, clock), clock)
        assert not await load(db, await field_cipher(settings, db, clock), clock)  # once
    finally:
        await db.dispose()
    anonymous = server.client()
    token = (await anonymous.execute(LOGIN, {"code": "wx-demo-patient"}))["loginWithWechat"]["token"]
    me = (await server.client(token).execute(MONEY))["me"]
    assert [b["title"] for b in me["pendingBills"]] and all(b["total"]["fen"] > 0 for b in me["pendingBills"])
    token = (await anonymous.execute(LOGIN, {"code": "wx-demo-defaulter"}))["loginWithWechat"]["token"]
    defaulter = server.client(token)
    patient_id = (await defaulter.execute(MONEY))["me"]["patients"][0]["id"]
    accounts = (await defaulter.execute(DEPOSITS, {"id": patient_id}))["me"]["depositAccounts"]
    assert accounts == [{"kind": "OUTPATIENT", "arrears": {"fen": 23850}}]
