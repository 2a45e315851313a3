"""Factories: a small hospital in the sandboxes and patients who log in through the real API."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from clients.reference import GraphQLClient
from datasources.channels.contract import WECHAT
from datasources.channels.sandbox import SandboxChannelLogin
from datasources.clock import Clock, local_date, local_datetime
from datasources.credit.sandbox import SandboxCreditPlatform
from datasources.his.sandbox import SandboxHISAdmin
from datasources.store.db import Database
from resolvers.documents import check_digit
from resolvers.identity import OPERATOR, create_staff

# 桃源院区 in GCJ-02, as a mini-program reports it.
CAMPUS_LAT, CAMPUS_LNG = 23.12911, 113.26436
AT_CAMPUS = {"latitude": 23.12930, "longitude": 113.26450, "system": "GCJ02"}
FAR_AWAY = {"latitude": 23.20000, "longitude": 113.30000, "system": "GCJ02"}

LOGIN = """
mutation Login($code: String!) {
  loginWithWechat(input: {code: $code}) {
    __typename
    ... on LoginSuccess { token account { id } }
    ... on UserError { message code }
  }
}"""

ADD_PATIENT = """
mutation Add($input: AddPatientInput!) {
  addPatient(input: $input) {
    __typename
    ... on PatientSaved { patient { id missingFields } }
    ... on UserError { message code }
    ... on InvalidInputError { field }
  }
}"""

CREATE_RECORD = """
mutation Record($patientId: ID!) {
  createHospitalRecord(input: {patientId: $patientId}) {
    __typename
    ... on MedicalCardBound { card { id cardNo } }
    ... on UserError { message code }
  }
}"""

_sequence = itertools.count(1)


def resident_id(birth: str = "19800101", *, male: bool = True, n: int | None = None) -> str:
    """A valid resident ID number (GB 11643 check digit) for a made-up person."""
    n = next(_sequence) if n is None else n
    order = (n % 49) * 2 + (1 if male else 2)
    body = f"440104{birth}{n // 49 % 10}{order:02d}"
    return body + check_digit(body)


def complete_patient(name: str = "张三", **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": name,
        "relationship": "SELF",
        "documentType": "RESIDENT_ID",
        "documentNumber": resident_id(),
        "phone": "13800138000",
        "ethnicity": "汉族",
        "occupation": "教师",
        "address": "广东省广州市越秀区",
        "addressDetail": "中山路 1 号",
    }
    data.update(overrides)
    return data


@dataclass
class PatientHandle:
    client: GraphQLClient
    token: str
    account_id: str
    patient_id: str
    name: str
    document_number: str
    subject: str


OPERATOR_PASSWORD = "Console-Pass-2026!"
OPERATOR_LOGIN = """
mutation ($u: String!, $p: String!) {
  loginWithPassword(input: {username: $u, password: $p, channel: "OPS_DASHBOARD"}) {
    __typename ... on LoginSuccess { token } ... on UserError { code message }
  }
}"""


class Hospital:
    """A campus, a department, a doctor; sessions on demand; patients through the real API."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self.admin = SandboxHISAdmin(db)
        self.credit = SandboxCreditPlatform(db)
        self.channels = SandboxChannelLogin(db, clock)
        self.campus_id = self.department_id = self.doctor_id = ""

    async def build(self) -> Hospital:
        self.campus_id = await self.admin.add_campus("桃源院区", "桃源路 1 号", CAMPUS_LAT, CAMPUS_LNG, "GCJ02")
        self.department_id = await self.admin.add_department(self.campus_id, "心血管内科")
        self.doctor_id = await self.admin.add_doctor(self.department_id, "王建国", "主任医师", "高血压")
        return self

    async def session(
        self,
        *,
        day: date | None = None,
        period: str = "AM",
        starts: list[tuple[int, int]] | None = None,
        capacity: int = 3,
        minutes: int = 30,
        fee_fen: int = 5000,
        doctor_id: str | None = None,
    ) -> tuple[str, list[str]]:
        """A session on ``day`` (default today) with slots starting at the given (hour, minute)."""
        day = day or local_date(self.clock.now())
        starts = starts or (
            [(8, 0), (8, 30), (9, 0), (9, 30), (10, 0), (10, 30), (11, 0), (11, 30)]
            if period == "AM"
            else [(14, 0), (14, 30), (15, 0), (15, 30)]
        )
        slots: list[tuple[datetime, datetime, int]] = []
        for hour, minute in starts:
            start = local_datetime(day, hour, minute)
            slots.append((start, start + timedelta(minutes=minutes), capacity))
        return await self.admin.add_schedule(doctor_id or self.doctor_id, day, period, fee_fen=fee_fen, slots=slots)

    async def login(self, client_url: str, subject: str | None = None) -> tuple[GraphQLClient, str, str]:
        code = await self.channels.issue_code(WECHAT, subject or f"openid-{next(_sequence)}")
        anonymous = GraphQLClient(client_url)
        data = await anonymous.execute(LOGIN, {"code": code})
        await anonymous.aclose()
        result = data["loginWithWechat"]
        assert result["__typename"] == "LoginSuccess", result
        return GraphQLClient(client_url, result["token"]), result["token"], result["account"]["id"]

    async def operator(self, client_url: str, username: str, permissions: list[str]) -> GraphQLClient:
        """An operator whose one role grants ``permissions``, logged in to the ops dashboard."""
        await create_staff(
            self.db,
            self.clock,
            role=OPERATOR,
            username=username,
            password=OPERATOR_PASSWORD,
            display_name="运营",
            operator_roles={f"role-{username}": permissions},
        )
        anonymous = GraphQLClient(client_url)
        data = await anonymous.execute(OPERATOR_LOGIN, {"u": username, "p": OPERATOR_PASSWORD})
        await anonymous.aclose()
        result = data["loginWithPassword"]
        assert result["__typename"] == "LoginSuccess", result
        return GraphQLClient(client_url, result["token"])

    async def patient(
        self,
        client_url: str,
        *,
        name: str = "张三",
        credit: str = "GOOD",
        arrears_fen: int = 12345,
        with_card: bool = True,
    ) -> PatientHandle:
        """A logged-in account with one complete patient, a HIS card, and a credit record."""
        subject = f"openid-{next(_sequence)}"
        client, token, account_id = await self.login(client_url, subject)
        data = complete_patient(name)
        added = (await client.execute(ADD_PATIENT, {"input": data}))["addPatient"]
        assert added["__typename"] == "PatientSaved", added
        patient_id = added["patient"]["id"]
        if with_card:
            bound = (await client.execute(CREATE_RECORD, {"patientId": patient_id}))["createHospitalRecord"]
            assert bound["__typename"] == "MedicalCardBound", bound
        if credit != "UNKNOWN":
            await self.credit.put_record(
                name=name,
                document_number=data["documentNumber"],
                arrears_here_fen=arrears_fen if credit == "DEFAULTED_HERE" else 0,
                arrears_elsewhere_fen=arrears_fen if credit == "DEFAULTED_ELSEWHERE" else 0,
            )
        return PatientHandle(client, token, account_id, patient_id, name, data["documentNumber"], subject)

    async def relogin(self, client_url: str, handle: PatientHandle) -> PatientHandle:
        """A new session for the same account, e.g. after the clock moved past the idle limit."""
        client, token, _ = await self.login(client_url, handle.subject)
        handle.client, handle.token = client, token
        return handle


async def his_card_of(db: Database, patient_id: str | int) -> tuple[str, str]:
    """The HIS patient id and card number behind a BFF patient (the API shows the card masked), for
    tests that act as the HIS (billing a visit, adding arrears)."""
    from sqlalchemy import select
    from sqlmodel import col

    from datasources.his.tables import HisCard
    from datasources.store.models import MedicalCardBinding

    async with db.reading() as s:
        binding = (
            await s.execute(select(MedicalCardBinding).where(col(MedicalCardBinding.patient_id) == int(patient_id)))
        ).scalars().first()
        assert binding is not None, f"patient {patient_id} has no card"
        card = (
            await s.execute(select(HisCard).where(col(HisCard.patient_id) == int(binding.his_patient_id)))
        ).scalars().first()
    assert card is not None
    return binding.his_patient_id, card.card_no
