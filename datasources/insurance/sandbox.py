"""The insurance platform sandbox: a platform in the database, committing on its own like a remote one.

``InsurancePlatformSandbox.handle`` answers envelopes as the platform would: it checks the sign_no,
remembers every msgid with its first answer (a repeated msgid gets that answer again and changes
nothing), and applies a transaction and the record of its message in one commit.
``SandboxInsurancePlatform`` is the contract over it, in-process.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasources.clock import SHANGHAI, Clock
from datasources.insurance import contract as c
from datasources.insurance import wire
from datasources.insurance.client import Institution, PlatformClient
from datasources.insurance.desk import Applied, Refusal, field, section
from datasources.insurance.rules import DEMO_RULES, SettlementRules
from datasources.insurance.settlement import SettlementDesk
from datasources.insurance.stays import StayDesk
from datasources.insurance.tables import (
    InsurChronicDisease,
    InsurInsurance,
    InsurMessage,
    InsurPerson,
    InsurRules,
    InsurSettlement,
    InsurSignIn,
    InsurVisit,
)
from datasources.store.db import Database

ACTIVE, CANCELLED, REVERSED = "ACTIVE", "CANCELLED", "REVERSED"
ANSWER_TIME_FORMAT = "%Y%m%d%H%M%S%f"


_Refusal = Refusal
_field = field
_data = section


def _fingerprint(request: wire.Request) -> str:
    text = wire.dumps({"infno": request.infno, "fixmedins": request.fixmedins_code, "input": request.input})
    return hashlib.sha256(text.encode()).hexdigest()


class InsurancePlatformSandbox:
    """``rules`` are the settlement rules for an insutype the admin has set none for."""

    def __init__(
        self, db: Database, clock: Clock, *, admvs: str = "440300", rules: SettlementRules = DEMO_RULES
    ) -> None:
        self.db = db
        self.clock = clock
        self.admvs = admvs
        self.settlements = SettlementDesk(admvs, rules)
        self.stays = StayDesk(admvs)

    async def handle(self, request: wire.Request) -> wire.Response:
        received = self.clock.now()
        fingerprint = _fingerprint(request)
        try:
            async with self.db.writing() as s:
                first = await s.get(InsurMessage, request.msgid)
                if first is not None:
                    return self._replay(first, fingerprint, received)
                try:
                    applied = await self._apply(s, request, received)
                    answer = self._answer(received, output=applied.output)
                except _Refusal as refusal:
                    answer, applied = self._answer(received, refusal=refusal), Applied({})
                s.add(InsurMessage(
                    msgid=request.msgid, infno=request.infno, fixmedins_code=request.fixmedins_code,
                    fingerprint=fingerprint, infcode=answer.infcode, answer=wire.dumps(answer.to_json()),
                    received_at=received, mdtrt_id=applied.mdtrt_id, effect=applied.effect_json,
                ))
            return answer
        except IntegrityError:
            # The same msgid arrived twice at once: the other one was applied; answer as it was.
            async with self.db.reading() as s:
                first = await s.get(InsurMessage, request.msgid)
            if first is None:
                raise
            return self._replay(first, fingerprint, received)

    def _replay(self, first: InsurMessage, fingerprint: str, received: datetime) -> wire.Response:
        if first.fingerprint != fingerprint:
            refusal = _Refusal(c.MSGID_REUSED, "this msgid was already used for another message")
            return self._answer(received, refusal=refusal)
        return wire.Response.from_json(wire.loads(first.answer))

    def _answer(
        self, received: datetime, *, output: dict[str, Any] | None = None, refusal: _Refusal | None = None
    ) -> wire.Response:
        local = received.astimezone(SHANGHAI)
        stamp = local.strftime(ANSWER_TIME_FORMAT)[:17]
        refmsgid = f"{self.admvs}{local.strftime(wire.MSG_TIME_FORMAT)}{secrets.randbelow(10**10):010d}"
        if refusal is not None:
            return wire.Response(wire.FAILURE, refmsgid, stamp, stamp, wire.coded(refusal.code, refusal.detail))
        return wire.Response(wire.SUCCESS, refmsgid, stamp, stamp, None, output or {})

    async def _apply(self, s: AsyncSession, request: wire.Request, now: datetime) -> Applied:
        """Applies a message; a refusal is raised before anything is changed (its record is committed)."""
        if request.infno == c.SIGN_IN:
            return Applied(await self._sign_in(s, request, now))
        await self._check_signed_in(s, request, now)
        if request.infno == c.PERSON_INFO:
            return Applied(await self._person_info(s, request))
        if request.infno == c.REGISTER:
            return Applied(*await self._register(s, request))
        if request.infno == c.CANCEL_REGISTRATION:
            return Applied(*await self._cancel(s, request))
        if request.infno == c.REVERSE:
            return Applied(await self._reverse(s, request))
        for desk in (self.settlements, self.stays):
            if request.infno in desk.handlers:
                return await desk.handlers[request.infno](s, request, now)
        raise _Refusal(c.BAD_REQUEST, f"the sandbox does not offer transaction {request.infno}")

    async def _sign_in(self, s: AsyncSession, request: wire.Request, now: datetime) -> dict[str, Any]:
        data = _data(request, "signIn")
        opter_no, mac, ip = _field(data, "opter_no"), _field(data, "mac"), _field(data, "ip")
        # A sign-in is good for the rest of its Beijing day.
        day_end = datetime.combine(now.astimezone(SHANGHAI).date() + timedelta(days=1), time(), SHANGHAI)
        sign_no = uuid.uuid4().hex
        s.add(InsurSignIn(
            sign_no=sign_no, fixmedins_code=request.fixmedins_code, opter_no=opter_no, mac=mac, ip=ip,
            signed_in_at=now, expires_at=day_end,
        ))
        return {"signinoutb": {"sign_time": wire.inf_time(now), "sign_no": sign_no}}

    async def _check_signed_in(self, s: AsyncSession, request: wire.Request, now: datetime) -> None:
        signed = await s.get(InsurSignIn, request.sign_no) if request.sign_no else None
        if signed is None or signed.fixmedins_code != request.fixmedins_code:
            raise _Refusal(c.SIGN_IN_REQUIRED, "not signed in: call 9001 first")
        if signed.expires_at <= now:
            raise _Refusal(c.SIGN_IN_REQUIRED, "the sign_no has expired: sign in again")

    async def _person_info(self, s: AsyncSession, request: wire.Request) -> dict[str, Any]:
        data = _data(request)
        certno, name = _field(data, "mdtrt_cert_no"), _field(data, "psn_name")
        person = (await s.execute(select(InsurPerson).where(col(InsurPerson.certno) == certno))).scalar_one_or_none()
        if person is None or person.psn_name != name:
            raise _Refusal(c.PERSON_NOT_FOUND, "no insured person with this certificate and name")
        insurances = await self._insurances(s, person.psn_no)
        return {
            "baseinfo": {
                "psn_no": person.psn_no, "psn_cert_type": person.psn_cert_type, "certno": person.certno,
                "psn_name": person.psn_name, "gend": person.gend,
            },
            "insuinfo": [
                {
                    "insutype": i.insutype, "psn_type": i.psn_type, "balc": wire.fen_to_yuan(i.balance_fen),
                    "insuplc_admdvs": i.insuplc_admdvs, "psn_insu_stas": "1" if i.active else "2",
                }
                for i in insurances
            ],
            "idetinfo": [],
        }

    async def _insurances(self, s: AsyncSession, psn_no: str) -> list[InsurInsurance]:
        stmt = select(InsurInsurance).where(col(InsurInsurance.psn_no) == psn_no).order_by(col(InsurInsurance.id))
        return list((await s.execute(stmt)).scalars().all())

    async def _register(self, s: AsyncSession, request: wire.Request) -> tuple[dict[str, Any], str]:
        data = _data(request)
        values: dict[str, Any] = {
            name: _field(data, name)
            for name in (
                "psn_no", "insutype", "begntime", "mdtrt_cert_type", "mdtrt_cert_no", "ipt_otp_no", "atddr_no",
                "dr_name", "dept_code", "dept_name", "caty",
            )
        }
        try:
            begntime = wire.parse_inf_time(values.pop("begntime"))
        except wire.EnvelopeError as exc:
            raise _Refusal(c.BAD_REQUEST, f"begntime: {exc}") from None
        if await s.get(InsurPerson, values["psn_no"]) is None:
            raise _Refusal(c.PERSON_NOT_FOUND, "no insured person with this psn_no")
        if not any(i.active and i.insutype == values["insutype"] for i in await self._insurances(s, values["psn_no"])):
            raise _Refusal(c.NOT_INSURED, f"the person has no active insurance of type {values['insutype']}")
        mdtrt_id = f"{self.admvs}{secrets.randbelow(10**20):020d}"
        s.add(InsurVisit(
            mdtrt_id=mdtrt_id, fixmedins_code=request.fixmedins_code, begntime=begntime, status=ACTIVE,
            msgid=request.msgid, **values,
        ))
        answer = {"mdtrt_id": mdtrt_id, "psn_no": values["psn_no"], "ipt_otp_no": values["ipt_otp_no"]}
        return {"data": answer}, mdtrt_id

    async def _visit(self, s: AsyncSession, request: wire.Request, psn_no: str, mdtrt_id: str) -> InsurVisit:
        visit = await s.get(InsurVisit, mdtrt_id)
        if (
            visit is None or visit.status == REVERSED or visit.psn_no != psn_no
            or visit.fixmedins_code != request.fixmedins_code or visit.kind != "OTP"
        ):
            raise _Refusal(c.VISIT_NOT_FOUND, "no such visit at this institution")
        return visit

    async def _cancel(self, s: AsyncSession, request: wire.Request) -> tuple[dict[str, Any], str]:
        data = _data(request)
        visit = await self._visit(s, request, _field(data, "psn_no"), _field(data, "mdtrt_id"))
        if visit.ipt_otp_no != _field(data, "ipt_otp_no"):
            raise _Refusal(c.VISIT_NOT_FOUND, "no such visit with this outpatient number")
        if visit.status == CANCELLED:
            raise _Refusal(c.ALREADY_CANCELLED, "the registration is already cancelled")
        settled = (await s.execute(select(col(InsurSettlement.setl_id)).where(
            col(InsurSettlement.mdtrt_id) == visit.mdtrt_id, col(InsurSettlement.status) == "SETTLED"
        ))).scalars().first()
        if settled is not None:
            raise _Refusal(c.ALREADY_SETTLED, "the visit is settled: cancel the settlement (2208) first")
        visit.status = CANCELLED
        s.add(visit)
        return {}, visit.mdtrt_id

    async def _reverse(self, s: AsyncSession, request: wire.Request) -> dict[str, Any]:
        data = _data(request)
        psn_no, omsgid, oinfno = _field(data, "psn_no"), _field(data, "omsgid"), _field(data, "oinfno")
        target = await s.get(InsurMessage, omsgid)
        if target is None or target.infno != oinfno or target.fixmedins_code != request.fixmedins_code:
            raise _Refusal(c.REVERSAL_TARGET_UNKNOWN, f"no {oinfno} message {omsgid} arrived from this institution")
        if oinfno == c.REVERSE:
            raise _Refusal(c.BAD_REQUEST, "a reversal cannot be reversed")
        if target.reversed_by is not None:
            return {}  # reversed already: nothing more to undo
        if target.infcode == wire.SUCCESS and target.mdtrt_id is not None:
            visit = await s.get(InsurVisit, target.mdtrt_id)
            if visit is not None and visit.psn_no != psn_no:
                raise _Refusal(c.REVERSAL_TARGET_UNKNOWN, "the message was about another person")
            if visit is not None and oinfno in (c.REGISTER, c.ADMIT):
                visit.status = REVERSED
            elif visit is not None and oinfno == c.CANCEL_REGISTRATION and visit.status == CANCELLED:
                visit.status = ACTIVE
            if visit is not None:
                s.add(visit)
            for desk in (self.settlements, self.stays):
                if oinfno in desk.reversible:
                    await desk.undo(s, target)
        target.reversed_by = request.msgid
        s.add(target)
        return {}


class SandboxInsurancePlatform(PlatformClient):
    """The contract over the sandbox, in-process; envelopes still pass through JSON both ways."""

    def __init__(
        self, sandbox: InsurancePlatformSandbox, institution: Institution, clock: Clock, msgids: wire.MsgIds
    ) -> None:
        async def exchange(request: wire.Request) -> wire.Response:
            sent = wire.Request.from_json(wire.loads(wire.dumps(request.to_json())))
            answer = await sandbox.handle(sent)
            return wire.Response.from_json(wire.loads(wire.dumps(answer.to_json())))

        super().__init__(exchange, institution, clock, msgids)


class InsuranceSandboxAdmin:
    """Seeds the sandbox (tests and demo data): who is insured, under which types, with what balance."""

    def __init__(self, db: Database, *, admvs: str = "440300") -> None:
        self.db = db
        self.admvs = admvs

    async def add_person(
        self,
        psn_name: str,
        certno: str,
        insurances: dict[str, int],
        *,
        gend: str = "1",
        psn_type: str = "11",
        inactive: tuple[str, ...] = (),
    ) -> str:
        """Adds a person insured under each insutype of ``insurances`` (its balance in fen); their psn_no."""
        psn_no = f"{self.admvs}{secrets.randbelow(10**16):016d}"
        async with self.db.writing() as s:
            s.add(InsurPerson(psn_no=psn_no, psn_name=psn_name, psn_cert_type="01", certno=certno, gend=gend))
            await s.flush()
            for insutype, balance_fen in insurances.items():
                s.add(InsurInsurance(
                    psn_no=psn_no, insutype=insutype, psn_type=psn_type, balance_fen=balance_fen,
                    insuplc_admdvs=self.admvs, active=insutype not in inactive,
                ))
        return psn_no

    async def _insurance(self, s: AsyncSession, psn_no: str, insutype: str) -> InsurInsurance:
        stmt = select(InsurInsurance).where(
            col(InsurInsurance.psn_no) == psn_no, col(InsurInsurance.insutype) == insutype
        ).with_for_update().execution_options(populate_existing=True)
        insurance = (await s.execute(stmt)).scalars().first()
        if insurance is None:
            raise LookupError(f"no insurance of type {insutype} for this person")
        return insurance

    async def set_balance(self, psn_no: str, insutype: str, balance_fen: int) -> None:
        """The personal account balance (balc)."""
        async with self.db.writing() as s:
            insurance = await self._insurance(s, psn_no, insutype)
            insurance.balance_fen = balance_fen
            s.add(insurance)

    async def set_family_account(self, psn_no: str, insutype: str, balance_fen: int) -> None:
        """What the family mutual-aid account (共济) can pay for this person; used when the rules allow."""
        async with self.db.writing() as s:
            insurance = await self._insurance(s, psn_no, insutype)
            insurance.family_balance_fen = balance_fen
            s.add(insurance)

    async def balances(self, psn_no: str, insutype: str) -> tuple[int, int]:
        """(personal account, family account) in fen."""
        async with self.db.reading() as s:
            stmt = select(InsurInsurance).where(
                col(InsurInsurance.psn_no) == psn_no, col(InsurInsurance.insutype) == insutype
            )
            insurance = (await s.execute(stmt)).scalars().one()
            return insurance.balance_fen, insurance.family_balance_fen

    async def add_chronic_disease(
        self, psn_no: str, opsp_dise_code: str, opsp_dise_name: str, begndate: date, enddate: date | None = None
    ) -> None:
        """Files a chronic or special disease for the person (what 5301 lists)."""
        async with self.db.writing() as s:
            s.add(InsurChronicDisease(
                psn_no=psn_no, opsp_dise_code=opsp_dise_code, opsp_dise_name=opsp_dise_name, begndate=begndate,
                enddate=enddate,
            ))

    async def set_rules(self, rules: SettlementRules, insutype: str = "310") -> None:
        """The settlement rules for one insutype (others keep the sandbox's default rules)."""
        async with self.db.writing() as s:
            row = await s.get(InsurRules, insutype)
            if row is None:
                s.add(InsurRules(insutype=insutype, rules=rules.to_json()))
            else:
                row.rules = rules.to_json()
                s.add(row)
