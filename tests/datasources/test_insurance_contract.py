"""The national insurance platform contract, as one suite run against every implementation: the
sandbox in-process, and ``HttpInsurancePlatform`` over real HTTP (uvicorn on loopback) to the sandbox
served in the platform's envelope format.

First the envelope itself (msgids, amounts, answers), then the transactions, then what only the
HTTP client has (timeouts that leave a write's outcome unknown, retried reads, the breaker).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import col
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datasources.clock import SHANGHAI, FixedClock
from datasources.errors import SourceRejected, SourceUnavailable
from datasources.insurance import contract as c
from datasources.insurance import wire
from datasources.insurance.client import Institution
from datasources.insurance.http import HttpInsurancePlatform
from datasources.insurance.sandbox import InsurancePlatformSandbox, InsuranceSandboxAdmin, SandboxInsurancePlatform
from datasources.insurance.served import insurance_platform_app
from datasources.insurance.tables import InsurVisit
from datasources.store.db import Database
from tests.conftest import LiveServer

IMPLEMENTATIONS = ["sandbox_in_process", "http_to_served_sandbox"]
HOSPITAL = Institution(
    fixmedins_code="H44030000001", fixmedins_name="桃源医院", mdtrtarea_admvs="440300", opter="0101",
    opter_name="自助机01", opter_type="2",
)
CERTNO = "440301198001010011"


@dataclass
class Stage:
    platform: c.InsurancePlatform
    sandbox: InsurancePlatformSandbox
    admin: InsuranceSandboxAdmin
    clock: FixedClock
    msgids: wire.MsgIds

    async def insured(self, name: str = "王五", certno: str = CERTNO, **balances: int) -> str:
        return await self.admin.add_person(name, certno, {k.lstrip("t"): v for k, v in balances.items()})

    def visit(self, psn_no: str, *, insutype: str = "310", ipt_otp_no: str = "MZ0001") -> c.VisitRequest:
        return c.VisitRequest(
            psn_no=psn_no, insutype=insutype, insuplc_admdvs="440300",
            begntime=self.clock.now().replace(microsecond=0), mdtrt_cert_type=c.CERT_RESIDENT_ID,
            mdtrt_cert_no=CERTNO, ipt_otp_no=ipt_otp_no, atddr_no="D440300000001", dr_name="张医生",
            dept_code="0301", dept_name="心内科门诊", caty="A03",
        )


@pytest.fixture(params=IMPLEMENTATIONS)
async def stage(request: pytest.FixtureRequest, db: Database, clock: FixedClock) -> AsyncIterator[Stage]:
    sandbox = InsurancePlatformSandbox(db, clock)
    admin = InsuranceSandboxAdmin(db)
    msgids = wire.MsgIds(HOSPITAL.fixmedins_code, clock)
    if request.param == "sandbox_in_process":
        yield Stage(SandboxInsurancePlatform(sandbox, HOSPITAL, clock, msgids), sandbox, admin, clock, msgids)
        return
    live = await LiveServer(insurance_platform_app(lambda: sandbox, clock)).start()
    client = HttpInsurancePlatform(live.url, HOSPITAL, clock, msgids, timeout=5)
    try:
        yield Stage(client, sandbox, admin, clock, msgids)
    finally:
        await client.aclose()
        await live.stop()


async def rejected(call: Awaitable[Any]) -> str:
    with pytest.raises(SourceRejected) as caught:
        await call
    return caught.value.code


def envelope(stage: Stage, infno: str, input: dict[str, Any], *, sign_no: str = "", msgid: str = "") -> wire.Request:
    return wire.Request(
        infno=infno, msgid=msgid or stage.msgids.next(), mdtrtarea_admvs="440300", insuplc_admdvs="440300",
        recer_sys_code="FSI_LOCAL", infver="V1.0", opter_type="1", opter="01", opter_name="收费员",
        inf_time=wire.inf_time(stage.clock.now()), fixmedins_code=HOSPITAL.fixmedins_code,
        fixmedins_name=HOSPITAL.fixmedins_name, sign_no=sign_no, input=input,
    )


# The envelope ---------------------------------------------------------------------------------------
def test_msgid_is_institution_code_beijing_second_and_a_sequence() -> None:
    clock = FixedClock(datetime(2026, 11, 30, 1, 2, 3, 500_000, tzinfo=SHANGHAI).astimezone(SHANGHAI))
    ids = wire.MsgIds("H44030000001", clock)
    first, second = ids.next(), ids.next()
    assert first == "H44030000001" + "20261130010203" + "0000"
    assert second == "H44030000001" + "20261130010203" + "0001"
    assert len(first) == 30
    clock.advance(seconds=1)
    assert ids.next().endswith("202611300102040000")


def test_msgid_sequence_wraps_into_the_next_second_rather_than_repeat() -> None:
    clock = FixedClock(datetime(2026, 11, 30, 8, 0, 0, tzinfo=SHANGHAI))
    ids = wire.MsgIds("H44030000001", clock)
    issued = [ids.next() for _ in range(10_001)]
    assert len(set(issued)) == len(issued)
    assert issued[9_999].endswith("202611300800009999")
    assert issued[10_000].endswith("202611300800010000")


def test_msgids_do_not_repeat_after_a_restart_within_the_same_second(tmp_path: Path) -> None:
    clock = FixedClock(datetime(2026, 11, 30, 8, 0, 0, tzinfo=SHANGHAI))
    state = tmp_path / "msgid.state"
    before = [wire.MsgIds("H44030000001", clock, state).next()]
    after = wire.MsgIds("H44030000001", clock, state).next()  # a new process, same second
    assert after not in before
    assert after.endswith("202611300800010000")


def test_amounts_convert_between_yuan_and_fen_exactly() -> None:
    assert wire.fen_to_yuan(123_456) == Decimal("1234.56")
    assert str(wire.fen_to_yuan(5)) == "0.05"
    assert wire.yuan_to_fen(Decimal("0.10")) == 10
    assert wire.yuan_to_fen(Decimal("99999999.99")) == 9_999_999_999
    assert wire.yuan_to_fen(12) == 1200
    with pytest.raises(wire.EnvelopeError):
        wire.yuan_to_fen(Decimal("1.005"))
    with pytest.raises(wire.EnvelopeError):
        wire.yuan_to_fen(0.1)  # type: ignore[arg-type]
    text = wire.dumps({"balc": wire.fen_to_yuan(1_000_000_000_001)})
    assert wire.yuan_to_fen(wire.loads(text)["balc"]) == 1_000_000_000_001


def test_failure_answers_carry_a_stable_code_or_read_as_platform_rejected() -> None:
    coded = wire.Response(-1, "r", "", "", wire.coded(c.PERSON_NOT_FOUND, "无此人员"))
    assert coded.rejection == (c.PERSON_NOT_FOUND, "无此人员")
    assert wire.Response(-1, "r", "", "", "参保信息异常").rejection == (wire.UNCODED, "参保信息异常")


# Sign-in ----------------------------------------------------------------------------------------------
async def test_nothing_but_sign_in_is_answered_before_signing_in(stage: Stage) -> None:
    await stage.insured(t310=100)
    assert await rejected(stage.platform.person_info(c.CERT_RESIDENT_ID, CERTNO, "王五")) == c.SIGN_IN_REQUIRED
    signed = await stage.platform.sign_in("0101", "00-1A-2B-3C-4D-5E", "10.0.0.8")
    assert len(signed.sign_no) == 32
    assert signed.sign_time == stage.clock.now().replace(microsecond=0)
    assert (await stage.platform.person_info(c.CERT_RESIDENT_ID, CERTNO, "王五")).certno == CERTNO


async def test_an_expired_sign_no_is_replaced_by_signing_in_again(stage: Stage) -> None:
    await stage.insured(t310=100)
    first = await stage.platform.sign_in("0101", "00-1A-2B-3C-4D-5E", "10.0.0.8")
    stage.clock.advance(days=1)
    await stage.platform.person_info(c.CERT_RESIDENT_ID, CERTNO, "王五")
    answer = await stage.sandbox.handle(envelope(stage, c.PERSON_INFO, {"data": {}}, sign_no=first.sign_no))
    assert answer.rejection[0] == c.SIGN_IN_REQUIRED  # the old one is dead; the client used a new one


# Person info (1101) -------------------------------------------------------------------------------------
async def test_person_info_lists_insurance_types_with_balances_in_fen(stage: Stage) -> None:
    psn_no = await stage.admin.add_person("王五", CERTNO, {"310": 123_456, "390": 5}, inactive=("390",))
    await stage.platform.sign_in("0101", "00-1A-2B-3C-4D-5E", "10.0.0.8")
    person = await stage.platform.person_info(c.CERT_RESIDENT_ID, CERTNO, "王五")
    assert person == c.Person(
        psn_no=psn_no, psn_name="王五", psn_cert_type="01", certno=CERTNO, gender="1",
        insurances=(
            c.Insurance("310", "11", 123_456, "440300", active=True),
            c.Insurance("390", "11", 5, "440300", active=False),
        ),
    )


async def test_person_info_refuses_an_unknown_certificate_or_a_wrong_name(stage: Stage) -> None:
    await stage.insured(t310=100)
    await stage.platform.sign_in("0101", "00-1A-2B-3C-4D-5E", "10.0.0.8")
    assert await rejected(stage.platform.person_info(c.CERT_RESIDENT_ID, "440301199901010000", "王五")) == (
        c.PERSON_NOT_FOUND
    )
    assert await rejected(stage.platform.person_info(c.CERT_RESIDENT_ID, CERTNO, "王六")) == c.PERSON_NOT_FOUND


# Registration (2201, 2202) ------------------------------------------------------------------------------
async def test_register_then_cancel_once(stage: Stage) -> None:
    psn_no = await stage.insured(t310=100)
    await stage.platform.sign_in("0101", "00-1A-2B-3C-4D-5E", "10.0.0.8")
    visit = await stage.platform.register(stage.visit(psn_no))
    assert (visit.psn_no, visit.ipt_otp_no) == (psn_no, "MZ0001")
    assert visit.mdtrt_id and len(visit.msgid) == 30
    cancel = stage.platform.cancel_registration(
        psn_no=psn_no, mdtrt_id=visit.mdtrt_id, ipt_otp_no="MZ0001", insuplc_admdvs="440300"
    )
    await cancel
    again = stage.platform.cancel_registration(
        psn_no=psn_no, mdtrt_id=visit.mdtrt_id, ipt_otp_no="MZ0001", insuplc_admdvs="440300"
    )
    assert await rejected(again) == c.ALREADY_CANCELLED
    unknown = stage.platform.cancel_registration(
        psn_no=psn_no, mdtrt_id="440300999", ipt_otp_no="MZ0001", insuplc_admdvs="440300"
    )
    assert await rejected(unknown) == c.VISIT_NOT_FOUND


async def test_register_refuses_a_type_the_person_is_not_insured_under(stage: Stage) -> None:
    psn_no = await stage.admin.add_person("王五", CERTNO, {"310": 100, "390": 0}, inactive=("390",))
    await stage.platform.sign_in("0101", "00-1A-2B-3C-4D-5E", "10.0.0.8")
    assert await rejected(stage.platform.register(stage.visit(psn_no, insutype="390"))) == c.NOT_INSURED
    assert await rejected(stage.platform.register(stage.visit(psn_no, insutype="320"))) == c.NOT_INSURED
    assert await rejected(stage.platform.register(stage.visit("440300000"))) == c.PERSON_NOT_FOUND


# Deduplication and reversal (2601) ----------------------------------------------------------------------
async def test_a_repeated_msgid_gets_the_first_answer_and_changes_nothing(stage: Stage) -> None:
    psn_no = await stage.insured(t310=100)
    signed = await stage.platform.sign_in("0101", "00-1A-2B-3C-4D-5E", "10.0.0.8")
    data = {
        "psn_no": psn_no, "insutype": "310", "begntime": wire.inf_time(stage.clock.now()), "mdtrt_cert_type": "02",
        "mdtrt_cert_no": CERTNO, "ipt_otp_no": "MZ0002", "atddr_no": "D1", "dr_name": "张医生", "dept_code": "0301",
        "dept_name": "心内科门诊", "caty": "A03",
    }
    request = envelope(stage, c.REGISTER, {"data": data}, sign_no=signed.sign_no)
    first, repeated = await stage.sandbox.handle(request), await stage.sandbox.handle(request)
    assert first.infcode == wire.SUCCESS and repeated == first
    reused = await stage.sandbox.handle(envelope(stage, c.REGISTER, {"data": {**data, "ipt_otp_no": "X"}},
                                                 sign_no=signed.sign_no, msgid=request.msgid))
    assert reused.rejection[0] == c.MSGID_REUSED
    # Only one visit exists: cancelling it once works, the second time it is already cancelled.
    assert first.output is not None
    mdtrt_id = first.output["data"]["mdtrt_id"]
    cancel = {"data": {"psn_no": psn_no, "mdtrt_id": mdtrt_id, "ipt_otp_no": "MZ0002"}}
    assert (await stage.sandbox.handle(envelope(stage, "2202", cancel, sign_no=signed.sign_no))).infcode == 0
    assert (await stage.sandbox.handle(envelope(stage, "2202", cancel, sign_no=signed.sign_no))).rejection[0] == (
        c.ALREADY_CANCELLED
    )


async def test_the_same_registration_sent_concurrently_under_one_msgid_is_applied_once(stage: Stage) -> None:
    psn_no = await stage.insured(t310=100)
    signed = await stage.platform.sign_in("0101", "00-1A-2B-3C-4D-5E", "10.0.0.8")
    data = {
        "psn_no": psn_no, "insutype": "310", "begntime": wire.inf_time(stage.clock.now()), "mdtrt_cert_type": "02",
        "mdtrt_cert_no": CERTNO, "ipt_otp_no": "MZ0003", "atddr_no": "D1", "dr_name": "张医生", "dept_code": "0301",
        "dept_name": "心内科门诊", "caty": "A03",
    }
    request = envelope(stage, c.REGISTER, {"data": data}, sign_no=signed.sign_no)
    answers = await asyncio.gather(*(stage.sandbox.handle(request) for _ in range(10)))
    assert {a.infcode for a in answers} == {wire.SUCCESS}
    assert len({a.inf_refmsgid for a in answers}) == 1
    async with stage.sandbox.db.reading() as s:
        visits = (await s.execute(select(InsurVisit).where(col(InsurVisit.psn_no) == psn_no))).scalars().all()
    assert len(visits) == 1


async def test_a_reversed_registration_no_longer_exists(stage: Stage) -> None:
    psn_no = await stage.insured(t310=100)
    await stage.platform.sign_in("0101", "00-1A-2B-3C-4D-5E", "10.0.0.8")
    visit = await stage.platform.register(stage.visit(psn_no))
    await stage.platform.reverse(psn_no=psn_no, omsgid=visit.msgid, oinfno=c.REGISTER, insuplc_admdvs="440300")
    # Reversing again is harmless: the outcome is the same.
    await stage.platform.reverse(psn_no=psn_no, omsgid=visit.msgid, oinfno=c.REGISTER, insuplc_admdvs="440300")
    cancel = stage.platform.cancel_registration(
        psn_no=psn_no, mdtrt_id=visit.mdtrt_id, ipt_otp_no="MZ0001", insuplc_admdvs="440300"
    )
    assert await rejected(cancel) == c.VISIT_NOT_FOUND


async def test_reversal_refuses_a_msgid_that_never_arrived(stage: Stage) -> None:
    psn_no = await stage.insured(t310=100)
    await stage.platform.sign_in("0101", "00-1A-2B-3C-4D-5E", "10.0.0.8")
    never_sent = stage.msgids.next()
    unknown = stage.platform.reverse(psn_no=psn_no, omsgid=never_sent, oinfno=c.REGISTER, insuplc_admdvs="440300")
    assert await rejected(unknown) == c.REVERSAL_TARGET_UNKNOWN
    visit = await stage.platform.register(stage.visit(psn_no))
    wrong_infno = stage.platform.reverse(
        psn_no=psn_no, omsgid=visit.msgid, oinfno=c.CANCEL_REGISTRATION, insuplc_admdvs="440300"
    )
    assert await rejected(wrong_infno) == c.REVERSAL_TARGET_UNKNOWN


async def test_reversing_a_cancellation_restores_the_visit(stage: Stage) -> None:
    psn_no = await stage.insured(t310=100)
    signed = await stage.platform.sign_in("0101", "00-1A-2B-3C-4D-5E", "10.0.0.8")
    visit = await stage.platform.register(stage.visit(psn_no))
    cancel = {"data": {"psn_no": psn_no, "mdtrt_id": visit.mdtrt_id, "ipt_otp_no": "MZ0001"}}
    cancelled = envelope(stage, "2202", cancel, sign_no=signed.sign_no)
    assert (await stage.sandbox.handle(cancelled)).infcode == wire.SUCCESS
    await stage.platform.reverse(psn_no=psn_no, omsgid=cancelled.msgid, oinfno="2202", insuplc_admdvs="440300")
    await stage.platform.cancel_registration(
        psn_no=psn_no, mdtrt_id=visit.mdtrt_id, ipt_otp_no="MZ0001", insuplc_admdvs="440300"
    )


# Only the HTTP client ------------------------------------------------------------------------------------
class Interposer:
    """In front of the served sandbox: counts envelopes per infno; can refuse the first of some with a
    503, and can hold back the answer to others after the platform has applied them."""

    def __init__(
        self, inner: ASGIApp, *, fail_first: tuple[str, ...] = (), slow: tuple[str, ...] = (), delay: float = 1.0
    ) -> None:
        self.inner, self.fail_first, self.slow, self.delay = inner, fail_first, slow, delay
        self.seen: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        infno = json.loads(body)["infno"]
        self.seen[infno] += 1

        async def replay() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        if infno in self.fail_first and self.seen[infno] == 1:
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"restarting"})
            return
        if infno not in self.slow:
            await self.inner(scope, replay, send)
            return
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.inner(scope, replay, hold)  # the platform has applied it; the answer is late
        await asyncio.sleep(self.delay)
        for message in held:
            await send(message)


async def signed_client(
    db: Database, clock: FixedClock, **interpose: Any
) -> tuple[HttpInsurancePlatform, LiveServer, Interposer, InsuranceSandboxAdmin]:
    interposer = Interposer(insurance_platform_app(lambda: InsurancePlatformSandbox(db, clock), clock), **interpose)
    live = await LiveServer(interposer).start()  # type: ignore[arg-type]
    msgids = wire.MsgIds(HOSPITAL.fixmedins_code, clock)
    client = HttpInsurancePlatform(live.url, HOSPITAL, clock, msgids, timeout=0.3, retries=2, backoff_seconds=0.01)
    await client.sign_in("0101", "00-1A-2B-3C-4D-5E", "10.0.0.8")
    return client, live, interposer, InsuranceSandboxAdmin(db)


async def test_a_registration_whose_answer_is_lost_is_unknown_and_reversing_it_removes_the_visit(
    db: Database, clock: FixedClock
) -> None:
    client, live, interposer, admin = await signed_client(db, clock, slow=(c.REGISTER,))
    stage = Stage(client, InsurancePlatformSandbox(db, clock), admin, clock, client.msgids)
    try:
        psn_no = await stage.insured(t310=100)
        with pytest.raises(c.OutcomeUnknown) as caught:
            await client.register(stage.visit(psn_no))
        assert (caught.value.infno, interposer.seen[c.REGISTER]) == (c.REGISTER, 1)  # a write is never retried
        async with db.reading() as s:
            made = (await s.execute(select(InsurVisit).where(col(InsurVisit.msgid) == caught.value.msgid))).scalar_one()
        assert made.status == "ACTIVE"  # it did happen

        await client.reverse(psn_no=psn_no, omsgid=caught.value.msgid, oinfno=c.REGISTER, insuplc_admdvs="440300")
        cancel = client.cancel_registration(
            psn_no=psn_no, mdtrt_id=made.mdtrt_id, ipt_otp_no="MZ0001", insuplc_admdvs="440300"
        )
        assert await rejected(cancel) == c.VISIT_NOT_FOUND
    finally:
        await client.aclose()
        await live.stop()


async def test_person_info_is_retried_under_the_same_msgid_and_a_failed_write_is_not(
    db: Database, clock: FixedClock
) -> None:
    client, live, interposer, admin = await signed_client(db, clock, fail_first=(c.PERSON_INFO, c.REGISTER))
    stage = Stage(client, InsurancePlatformSandbox(db, clock), admin, clock, client.msgids)
    try:
        psn_no = await stage.insured(t310=100)
        assert (await client.person_info(c.CERT_RESIDENT_ID, CERTNO, "王五")).psn_no == psn_no
        assert interposer.seen[c.PERSON_INFO] == 2
        with pytest.raises(c.OutcomeUnknown, match="HTTP 503") as caught:
            await client.register(stage.visit(psn_no))
        assert interposer.seen[c.REGISTER] == 1
        # It never reached the platform, which says so when asked to reverse it.
        never = client.reverse(psn_no=psn_no, omsgid=caught.value.msgid, oinfno=c.REGISTER, insuplc_admdvs="440300")
        assert await rejected(never) == c.REVERSAL_TARGET_UNKNOWN
        assert (await client.register(stage.visit(psn_no))).mdtrt_id
    finally:
        await client.aclose()
        await live.stop()


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_a_platform_that_is_down_opens_the_circuit(clock: FixedClock) -> None:
    client = HttpInsurancePlatform(
        f"http://127.0.0.1:{unused_port()}", HOSPITAL, clock, wire.MsgIds(HOSPITAL.fixmedins_code, clock),
        timeout=1, retries=0, failure_threshold=2, cooldown_seconds=30,
    )
    try:
        for _ in range(2):
            with pytest.raises(SourceUnavailable, match="transport error"):
                await client.sign_in("0101", "mac", "ip")
        started = time.monotonic()
        with pytest.raises(SourceUnavailable, match="circuit open"):
            await client.person_info(c.CERT_RESIDENT_ID, CERTNO, "王五")
        assert time.monotonic() - started < 0.05
    finally:
        await client.aclose()


async def test_the_served_platform_answers_a_malformed_envelope_with_bad_request(
    db: Database, clock: FixedClock
) -> None:
    live = await LiveServer(insurance_platform_app(lambda: InsurancePlatformSandbox(db, clock), clock)).start()
    try:
        async with httpx.AsyncClient(base_url=live.url) as http:
            for body in (b"not json", b'{"infno": "1101"}', b"[]"):
                response = await http.post(wire.PATH, content=body)
                answer = wire.Response.from_json(wire.loads(response.content))
                assert (response.status_code, answer.infcode, answer.rejection[0]) == (400, -1, c.BAD_REQUEST)
    finally:
        await live.stop()
