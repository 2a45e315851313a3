"""Demo data, loaded once into a fresh install: a working hospital to click through.

Schedules roll forward: every start adds the days missing from the next 14, so the demo never
runs dry. Accounts are printed on start (``main.py``) and listed in the README.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import func, select

from datasources.channels.contract import ALIPAY, WECHAT
from datasources.channels.sandbox import SandboxChannelLogin
from datasources.clock import Clock, local_date, local_datetime
from datasources.credit.sandbox import SandboxCreditPlatform
from datasources.his.billing_sandbox import SandboxHISBillingAdmin
from datasources.his.sandbox import SandboxHIS, SandboxHISAdmin
from datasources.mobile_insurance.sandbox import SandboxMobileInsuranceAdmin
from datasources.sources import Sources
from datasources.store.audit import AuditLog
from datasources.store.db import Database
from datasources.store.fieldcrypt import FieldCipher
from datasources.store.models import Account
from realtime.broker import MemoryBroker
from resolvers import identity, medical_cards, patients
from resolvers.deps import Deps
from resolvers.documents import check_digit

DAYS = 14


@dataclass(frozen=True)
class DemoLogin:
    who: str
    how: str


LOGINS = (
    DemoLogin("patient (WeChat), credit GOOD", 'loginWithWechat(input: {code: "wx-demo-patient"})'),
    DemoLogin("patient (Alipay), credit GOOD", 'loginWithAlipay(input: {authCode: "ali-demo-patient"})'),
    DemoLogin("patient (WeChat), arrears here", 'loginWithWechat(input: {code: "wx-demo-defaulter"})'),
    DemoLogin("patient (WeChat), arrears elsewhere", 'loginWithWechat(input: {code: "wx-demo-elsewhere"})'),
    DemoLogin("doctor", 'loginWithPassword(input: {username: "doctor", password: "Ward-Round-2026"})'),
    DemoLogin(
        "pharmacist",
        'loginWithPassword(input: {username: "pharmacist", password: "Dispensary-2026", '
        'channel: "PHARMACIST_WORKBENCH"})',
    ),
    DemoLogin(
        "operator",
        'loginWithPassword(input: {username: "operator", password: "Night-Shift-2026", channel: "OPS_DASHBOARD"})',
    ),
)

CAMPUSES = (
    ("桃源院区", "桃源路 1 号", 23.12911, 113.26436, "GCJ02"),
    ("北院院区", "北京路 88 号", 23.13940, 113.27010, "GCJ02"),
    ("星湖门诊", "星湖大道 9 号", 23.10210, 113.32050, "WGS84"),
)
DEPARTMENTS = {
    "内科": ("心血管内科", "消化内科", "呼吸内科", "神经内科"),
    "外科": ("普通外科", "骨科", "泌尿外科"),
    "妇儿": ("儿科", "妇科", "产科"),
    "五官科": ("眼科", "耳鼻喉科", "口腔科"),
}
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
GIVEN = ("建国", "秀英", "志强", "丽华", "海燕", "文杰", "晓明", "春梅", "国栋", "慧敏", "立新", "雅琴")
TITLES = (("主任医师", 5000), ("副主任医师", 3000), ("主治医师", 1500), ("住院医师", 1000))


def demo_resident_id(seed: str, birth: str, male: bool) -> str:
    """A syntactically valid resident ID (region 440104, Guangzhou) for demo people only."""
    n = int(hashlib.sha256(seed.encode()).hexdigest(), 16) % 100
    sequence = f"{n:02d}{1 if male else 2}"
    body = f"440104{birth}{sequence}"
    return body + check_digit(body)


async def load(db: Database, cipher: FieldCipher, clock: Clock) -> bool:
    """Loads the demo hospital once; returns False when it was already there."""
    async with db.reading() as s:
        accounts = (await s.execute(select(func.count()).select_from(Account))).scalar_one()
    admin = SandboxHISAdmin(db)
    if accounts == 0:
        await _catalog(admin)
        await _people(db, cipher, clock, admin)
    await extend_schedules(admin, local_date(clock.now()))
    return accounts == 0


async def _catalog(admin: SandboxHISAdmin) -> None:
    k = 0
    for c_index, (name, address, lat, lng, system) in enumerate(CAMPUSES):
        campus = await admin.add_campus(name, address, lat, lng, system)
        for parent, children in DEPARTMENTS.items():
            if c_index == 2 and parent == "外科":
                continue  # the outpatient-only campus has no surgery
            parent_id = await admin.add_department(campus, parent, introduction=f"{name}{parent}")
            for child in children:
                dept = await admin.add_department(campus, child, parent_id, introduction=f"{name}{child}门诊")
                for _ in range(2 if c_index < 2 else 1):
                    title, _fee = TITLES[k % len(TITLES)]
                    doctor_name = SURNAMES[k % len(SURNAMES)] + GIVEN[(k * 7) % len(GIVEN)]
                    await admin.add_doctor(
                        dept,
                        doctor_name,
                        title,
                        f"{child}常见病、多发病",
                        introduction=f"{doctor_name}，{title}，从事{child}临床工作多年。",
                        avatar_url=f"/static/avatars/{k % 12}.png",
                        internet_hospital_url=f"https://ih.example-hospital.cn/doctors/{k + 1}" if k % 3 else None,
                    )
                    k += 1


async def extend_schedules(admin: SandboxHISAdmin, today: date) -> None:
    """Every doctor works one or two half-days a day; slots of 30 minutes for 3 patients each."""
    have = await admin.days_with_schedules(today)
    doctors = await admin.doctor_ids()
    for offset in range(DAYS):
        day = today + timedelta(days=offset)
        if day in have:
            continue
        for i, doctor in enumerate(doctors):
            periods = ("AM", "PM") if (i + offset) % 3 == 0 else (("AM",) if (i + offset) % 2 else ("PM",))
            fee = TITLES[i % len(TITLES)][1]
            for period in periods:
                start_hour, count = (8, 8) if period == "AM" else (14, 7)
                slots = []
                for n in range(count):
                    start = local_datetime(day, start_hour) + timedelta(minutes=30 * n)
                    slots.append((start, start + timedelta(minutes=30), 3))
                await admin.add_schedule(doctor, day, period, fee_fen=fee, slots=slots)


async def _people(db: Database, cipher: FieldCipher, clock: Clock, admin: SandboxHISAdmin) -> None:
    channels = SandboxChannelLogin(db, clock)
    credit = SandboxCreditPlatform(db)
    sources = Sources(his=SandboxHIS(db, clock), credit=credit, channels=channels)
    deps = Deps(
        db=db, cipher=cipher, sources=sources, broker=MemoryBroker(), clock=clock, audit=AuditLog(cipher.keyring)
    )
    people = (
        (WECHAT, "wx-demo-patient", "张三", "19800101", True, 0, 0),
        (ALIPAY, "ali-demo-patient", "李四", "19750615", True, 0, 0),
        (WECHAT, "wx-demo-defaulter", "王五", "19620320", True, 23850, 0),
        (WECHAT, "wx-demo-elsewhere", "赵六", "19901111", False, 0, 12000),
    )
    billing = SandboxHISBillingAdmin(db)
    insured = SandboxMobileInsuranceAdmin(db)
    doctors = await admin.doctor_ids()
    department_id = (await SandboxHIS(db, clock).doctors_by_ids(doctors[:1]))[0].department_id
    for channel, code, name, birth, male, here, elsewhere in people:
        await channels.issue_code(channel, f"demo-{code}", reusable=True, code=code)
        app = identity.FrontEnd(code=channel, login=channel, roles=frozenset({identity.PATIENT}))
        login = await identity.login_with_channel(db, channels, clock, identity.SessionPolicy(), app=app, code=code)
        account_id = login.viewer.account_id or 0
        number = demo_resident_id(code, birth, male)
        me = await patients.add_patient(
            deps,
            account_id=account_id,
            data=patients.PatientInput(
                name=name,
                relationship="SELF",
                document_type="RESIDENT_ID",
                document_number=number,
                phone="13800138000",
                ethnicity="汉族",
                occupation="职员",
                address="广东省广州市越秀区",
                address_detail="中山路 100 号",
            ),
        )
        card = await medical_cards.create_hospital_record(deps, account_id=account_id, patient_id=me.id)
        await credit.put_record(
            name=name, document_number=number, arrears_here_fen=here, arrears_elsewhere_fen=elsewhere
        )
        # Money to click through: this morning's bills in cardiology, the arrears the credit platform
        # knows of, and an insured person at the mobile insurance platform (200 yuan personal account,
        # 100 yuan family account) for paying with insurance.
        await billing.add_demo_bills(
            card.his_patient_id, card.card_no, department_id=department_id, doctor_id=doctors[0], at=clock.now()
        )
        if here:
            await billing.add_arrears(card.his_patient_id, here, at=clock.now())
        await insured.add_insured_person(
            id_no=number, name=name, insurance_area="440100", personal_balance_fen=20000, family_balance_fen=10000
        )
        if code == "wx-demo-patient":
            # A child whose record is still incomplete: the app must send the user to the form.
            await patients.add_patient(
                deps,
                account_id=account_id,
                data=patients.PatientInput(
                    name="张小三",
                    relationship="CHILD",
                    document_type="RESIDENT_ID",
                    document_number=demo_resident_id("child", "20180808", True),
                ),
            )
    await identity.create_staff(
        db,
        clock,
        role=identity.DOCTOR,
        username="doctor",
        password="Ward-Round-2026",  # noqa: S106
        display_name="Demo doctor",
        his_staff_id=doctors[0],
    )
    await identity.create_staff(
        db,
        clock,
        role=identity.PHARMACIST,
        username="pharmacist",
        password="Dispensary-2026",  # noqa: S106
        display_name="Demo pharmacist",
    )
    await identity.create_staff(
        db,
        clock,
        role=identity.OPERATOR,
        username="operator",
        password="Night-Shift-2026",  # noqa: S106
        display_name="Demo operator",
        operator_roles={
            "operations-lead": [
                "audit.read",
                "registrations.read",
                "patients.read",
                "personal_data.unmask",
                "security.manage",
                "payments.reconcile",
                "refunds.approve",
            ]
        },
    )
