"""Who the benchmarks need in the hospital: logged-in patients with cards, bookings, a queue.

Patients, cards, bookings and check-ins go through the GraphQL API, like a mini-program. What no
API offers, the benchmark does as the systems behind the BFF would: the WeChat runtime issues
login codes (channel sandbox), the provincial platform knows people's credit (credit sandbox),
and HIS staff publish sessions (``SandboxHISAdmin``).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import httpx
from sqlalchemy import select
from sqlmodel import col

from datasources.channels.contract import WECHAT
from datasources.channels.sandbox import SandboxChannelLogin
from datasources.clock import SystemClock, local_date
from datasources.credit.sandbox import SandboxCreditPlatform
from datasources.his.tables import HisRegistration, HisSchedule, HisSlot
from datasources.store.db import Database
from resolvers.documents import check_digit

LOGIN = """
mutation Login($code: String!) {
  loginWithWechat(input: {code: $code}) { __typename ... on LoginSuccess { token account { id } } }
}"""
STAFF_LOGIN = """
mutation Staff($username: String!, $password: String!) {
  loginWithPassword(input: {username: $username, password: $password}) {
    __typename ... on LoginSuccess { token account { id } }
  }
}"""
MY_PATIENTS = "{ me { patients { id name missingFields hasHospitalRecord } } }"
ADD_PATIENT = """
mutation Add($input: AddPatientInput!) {
  addPatient(input: $input) { __typename ... on PatientSaved { patient { id } } ... on UserError { code message } }
}"""
CREATE_RECORD = """
mutation Record($patientId: ID!) {
  createHospitalRecord(input: {patientId: $patientId}) { __typename ... on UserError { code message } }
}"""
BOOK = """mutation Book($input: BookAppointmentInput!) {
  bookAppointment(input: $input) {
    __typename
    ... on AppointmentBooked { registration { id status paymentStatus queueNumber } payLaterEligible creditStatus }
    ... on UserError { code message }
  }
}"""
CHECK_IN = """
mutation CheckIn($input: CheckInInput!) {
  checkIn(input: $input) {
    __typename ... on CheckedIn { queuePosition { state ahead } } ... on UserError { code message }
  }
}"""
SCHEDULES = """
query Schedules($from: Date!, $to: Date!) {
  schedules(dateFrom: $from, dateTo: $to) { id date period doctorId campusId slots { id startsAt endsAt remaining } }
}"""
CAMPUSES = "{ campuses { id latitude longitude coordinateSystem } }"
ACTIVE = ("BOOKED", "CHECKED_IN", "CALLED", "LOCKED")


class ApiError(RuntimeError):
    pass


class Api:
    """A minimal GraphQL-over-HTTP caller for the set-up (the measured traffic comes from wrk)."""

    def __init__(self, base_url: str, http: httpx.AsyncClient) -> None:
        self.base_url = base_url
        self.http = http

    async def call(self, query: str, variables: dict | None = None, token: str | None = None) -> dict:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        r = await self.http.post(
            f"{self.base_url}/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        r.raise_for_status()
        body = r.json()
        if body.get("errors"):
            raise ApiError(f"GraphQL errors: {body['errors']}")
        data: dict = body["data"]
        return data

    async def login(self, code: str) -> tuple[str, int]:
        out = (await self.call(LOGIN, {"code": code}))["loginWithWechat"]
        if out["__typename"] != "LoginSuccess":
            raise ApiError(f"login with {code} failed: {out}")
        return out["token"], int(out["account"]["id"])

    async def staff_login(self, username: str, password: str) -> str:
        out = (await self.call(STAFF_LOGIN, {"username": username, "password": password}))["loginWithPassword"]
        if out["__typename"] != "LoginSuccess":
            raise ApiError(f"staff login failed: {out}")
        token: str = out["token"]
        return token


@dataclass
class BenchPatient:
    token: str
    patient_id: str


@dataclass
class Crowd:
    """Accounts of made-up patients, each with complete records and a hospital card."""

    patients: list[BenchPatient] = field(default_factory=list)


def person(n: int) -> dict:
    """A complete, valid patient record for made-up person n (resident ID with a correct check digit)."""
    birth = (date(1940, 1, 1) + timedelta(days=n // 50)).strftime("%Y%m%d")
    male = n % 2 == 0
    body = f"440104{birth}{n % 50:02d}{1 if male else 2}"
    return {
        "name": "测试" + "甲乙丙丁戊己庚辛壬癸"[n % 10] + "子丑寅卯辰巳午未申酉戌亥"[(n // 10) % 12],
        "relationship": "SELF" if n % 10 == 0 else "OTHER",
        "documentType": "RESIDENT_ID",
        "documentNumber": body + check_digit(body),
        "phone": f"139{n % 10**8:08d}",
        "ethnicity": "汉族",
        "occupation": "职员",
        "address": "广东省广州市越秀区",
        "addressDetail": f"中山路 {n} 号",
    }


async def issue_codes(db: Database, codes: list[str]) -> None:
    """What the WeChat runtime does when these users open the mini-program."""
    channels = SandboxChannelLogin(db, SystemClock())
    for code in codes:
        await channels.issue_code(WECHAT, f"subject-{code}", reusable=True, code=code)


async def make_crowd(
    api: Api, db: Database, *, accounts: int, per_account: int, prefix: str, first_person: int = 0,
    concurrency: int = 8,
) -> Crowd:
    """``accounts`` × ``per_account`` patients (≤ 10 per account), all with cards and credit GOOD."""
    codes = [f"{prefix}-{i}" for i in range(accounts)]
    await issue_codes(db, codes)
    credit = SandboxCreditPlatform(db)
    crowd = Crowd()
    gate = asyncio.Semaphore(concurrency)

    async def one_account(i: int) -> list[BenchPatient]:
        async with gate:
            token, _ = await api.login(codes[i])
            out = []
            for j in range(per_account):
                data = person(first_person + i * per_account + j)
                saved = (await api.call(ADD_PATIENT, {"input": data}, token))["addPatient"]
                if saved["__typename"] != "PatientSaved":
                    raise ApiError(f"addPatient: {saved}")
                pid = saved["patient"]["id"]
                await credit.put_record(name=data["name"], document_number=data["documentNumber"])
                record = (await api.call(CREATE_RECORD, {"patientId": pid}, token))["createHospitalRecord"]
                if record["__typename"] != "MedicalCardBound":
                    raise ApiError(f"createHospitalRecord: {record}")
                out.append(BenchPatient(token, pid))
            return out

    for group in await asyncio.gather(*(one_account(i) for i in range(accounts))):
        crowd.patients.extend(group)
    return crowd


async def booking_plan(
    db: Database, crowd: Crowd, *, not_before: datetime, exclude_days: set[date] | None = None, seed: int = 7
) -> list[tuple[BenchPatient, str]]:
    """Every (patient, slot) booking that can still succeed: within each slot's remaining places and
    at most one registration per patient and session (HIS's rule), shuffled across sessions."""
    async with db.reading() as s:
        slots = (
            await s.execute(
                select(
                    col(HisSlot.id), col(HisSlot.schedule_id), col(HisSlot.capacity) - col(HisSlot.booked),
                    col(HisSchedule.day),
                )
                .join(HisSchedule, col(HisSchedule.id) == col(HisSlot.schedule_id))
                .where(col(HisSlot.starts_at) > not_before, col(HisSlot.booked) < col(HisSlot.capacity))
                .order_by(col(HisSlot.id))
            )
        ).all()
        taken = set(
            (
                await s.execute(
                    select(col(HisRegistration.patient_id), col(HisRegistration.schedule_id)).where(
                        col(HisRegistration.status).in_(ACTIVE)
                    )
                )
            ).all()
        )
        his_ids = await _his_patient_ids(db, [p.patient_id for p in crowd.patients])
    exclude_days = exclude_days or set()
    sessions: dict[int, list[tuple[int, int]]] = {}
    for slot_id, schedule_id, remaining, day in slots:
        if day not in exclude_days:
            sessions.setdefault(schedule_id, []).extend([(int(slot_id or 0), schedule_id)] * remaining)
    rng = random.Random(seed)
    plan: list[tuple[BenchPatient, str]] = []
    for schedule_id, places in sessions.items():
        free = [p for p in crowd.patients if (his_ids[p.patient_id], schedule_id) not in taken]
        rng.shuffle(free)
        plan.extend((patient, str(slot_id)) for patient, (slot_id, _) in zip(free, places, strict=False))
    rng.shuffle(plan)
    return plan


async def _his_patient_ids(db: Database, patient_ids: list[str]) -> dict[str, int]:
    from datasources.store.models import Patient

    async with db.reading() as s:
        rows = (
            await s.execute(
                select(col(Patient.id), col(Patient.his_patient_id)).where(
                    col(Patient.id).in_([int(p) for p in patient_ids])
                )
            )
        ).all()
    return {str(pid): int(his) for pid, his in rows if his is not None}


async def schedules(api: Api, today: date, days: int = 14) -> list[dict]:
    data = await api.call(SCHEDULES, {"from": today.isoformat(), "to": (today + timedelta(days=days - 1)).isoformat()})
    found: list[dict] = data["schedules"]
    return found


async def campus_locations(api: Api) -> dict[str, dict]:
    """Where to stand for a geofenced check-in: at the campus, in its own coordinate system."""
    campuses = (await api.call(CAMPUSES))["campuses"]
    return {
        c["id"]: {"latitude": c["latitude"], "longitude": c["longitude"], "system": c["coordinateSystem"]}
        for c in campuses
    }


async def book(api: Api, token: str, patient_id: str, slot_id: str) -> dict:
    out: dict = (await api.call(BOOK, {"input": {"patientId": patient_id, "slotId": slot_id}}, token))[
        "bookAppointment"
    ]
    return out


async def check_in(api: Api, token: str, registration_id: str, location: dict) -> dict:
    out: dict = (
        await api.call(CHECK_IN, {"input": {"registrationId": registration_id, "location": location}}, token)
    )["checkIn"]
    return out


def today_local() -> date:
    return local_date(SystemClock().now())
