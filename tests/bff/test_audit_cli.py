"""`python -m bff.audit`: verify, show (only to operators granted audit.read, and itself audited),
purge within the retention rule, seal the legacy table."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlmodel import col

from bff.audit import run
from bff.keys import open_keyring
from bff.settings import Settings
from datasources.clock import FixedClock
from datasources.store.audit import AuditLog
from datasources.store.audit_chain import verify
from datasources.store.db import Database
from datasources.store.models import AuditEntry, AuditRecord
from resolvers.identity import DOCTOR, OPERATOR, create_staff
from tests.conftest import DatabaseTarget

READER_PASSWORD = "Audit-Reader-2026"


@pytest.fixture
async def audit(settings: Settings, db: Database, clock: FixedClock) -> AuditLog:
    return AuditLog(await open_keyring(settings, db, clock))


async def staff(db: Database, clock: FixedClock) -> dict[str, int]:
    """An auditor (audit.read), an operator without it, and a doctor."""
    return {
        "auditor": await create_staff(
            db, clock, role=OPERATOR, username="auditor", password=READER_PASSWORD, display_name="审计员",
            operator_roles={"auditors": ["audit.read"]},
        ),
        "front.desk": await create_staff(
            db, clock, role=OPERATOR, username="front.desk", password=READER_PASSWORD, display_name="前台",
            operator_roles={"front-desk": ["registrations.read"]},
        ),
        "dr.zhou": await create_staff(
            db, clock, role=DOCTOR, username="dr.zhou", password=READER_PASSWORD, display_name="周医生"
        ),
    }


async def login_recorded(audit: AuditLog, db: Database, clock: FixedClock, *, days_ago: float = 0) -> None:
    async with db.writing() as s:
        await audit.record(
            s,
            at=clock.now() - timedelta(days=days_ago),
            actor_account_id=9,
            actor_role=DOCTOR,
            action="login",
            target_type="account",
            target_id="9",
            detail={"channel": "DOCTOR_H5", "from": "病区 3"},
            request_id="req-login",
        )


async def cli(settings: Settings, clock: FixedClock, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    status = await run(list(argv), settings=settings, clock=clock, out=out)
    return status, out.getvalue()


async def test_show_decrypts_for_an_operator_granted_audit_read_and_records_that_they_read(
    settings: Settings, db: Database, clock: FixedClock, audit: AuditLog
) -> None:
    ids = await staff(db, clock)
    await login_recorded(audit, db, clock)
    status, out = await cli(settings, clock, "show", "--as", "auditor", "--action", "login")
    assert status == 0
    assert "login" in out and "病区 3" in out and "request=req-login" in out and "DOCTOR#9" in out
    last = (await audit.read(db))[-1]
    assert (last.action, last.actor_account_id, last.actor_role) == ("audit.read", ids["auditor"], OPERATOR)
    assert last.detail["action"] == "login" and last.detail["via"] == "bff.audit show"


@pytest.mark.parametrize("who", ["front.desk", "dr.zhou", "nobody"])
async def test_show_refuses_anyone_without_audit_read_and_prints_nothing(
    who: str, settings: Settings, db: Database, clock: FixedClock, audit: AuditLog, capsys: pytest.CaptureFixture[str]
) -> None:
    await staff(db, clock)
    await login_recorded(audit, db, clock)
    status, out = await cli(settings, clock, "show", "--as", who)
    assert (status, out) == (2, "")
    assert "refused" in capsys.readouterr().err
    assert [e.action for e in await audit.read(db)] == ["login"]


async def test_verify_exits_1_and_names_the_broken_record(
    settings: Settings, db: Database, clock: FixedClock, audit: AuditLog
) -> None:
    for _ in range(3):
        await login_recorded(audit, db, clock)
    status, out = await cli(settings, clock, "verify")
    assert status == 0 and "3 records" in out and "verified" in out
    async with db.writing() as s:
        await s.execute(update(AuditRecord).where(col(AuditRecord.seq) == 2).values(action="logout"))
    status, out = await cli(settings, clock, "verify")
    assert status == 1 and "BROKEN at record 2" in out
    assert "病区" not in out  # verification reports numbers and reasons, never what a record says


async def test_purge_applies_the_retention_and_refuses_to_cut_into_six_months(
    settings: Settings, db: Database, clock: FixedClock, audit: AuditLog, capsys: pytest.CaptureFixture[str]
) -> None:
    await login_recorded(audit, db, clock, days_ago=200)
    await login_recorded(audit, db, clock, days_ago=191)
    await login_recorded(audit, db, clock, days_ago=20)
    status, out = await cli(settings, clock, "purge", "--before", (clock.now() - timedelta(days=30)).date().isoformat())
    assert status == 2 and "at least 6 months" in capsys.readouterr().err
    status, out = await cli(settings, clock, "purge")
    assert status == 0 and "2 records" in out and "after record 2" in out
    assert (await verify(db, audit.keyring)).ok
    assert [e.action for e in await audit.read(db)] == ["login", "audit.purge"]


async def test_seal_legacy_moves_the_plain_rows_into_the_chain(
    settings: Settings, db: Database, clock: FixedClock, audit: AuditLog
) -> None:
    async with db.writing() as s:
        s.add(
            AuditEntry(
                at=clock.now(), actor_account_id=3, actor_role=DOCTOR, action="queue.call_next",
                target_type="schedule", target_id="12", detail=json.dumps({"number": 4}), request_id="r",
            )
        )
    status, out = await cli(settings, clock, "seal-legacy")
    assert status == 0 and out.startswith("1 legacy")
    async with db.reading() as s:
        assert (await s.execute(select(AuditEntry))).first() is None
    assert [e.action for e in await audit.read(db)] == ["queue.call_next", "audit.seal_legacy"]
    assert (await verify(db, audit.keyring)).ok


async def test_the_module_runs_from_the_command_line(
    settings: Settings, database: DatabaseTarget, db: Database, clock: FixedClock, audit: AuditLog
) -> None:
    await login_recorded(audit, db, clock)
    env = {
        **os.environ,
        "DATABASE_URL": database.url,
        "MASTER_KEY": settings.master_key or "",
        "DATA_DIR": str(settings.data_dir),
        "BFF_CONFIG": "/nonexistent.toml",
    }
    if database.schema:
        env["DATABASE_SCHEMA"] = database.schema

    async def python_m(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bff.audit", *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        return proc.returncode or 0, out.decode(), err.decode()

    status, out, _ = await python_m("verify")
    assert status == 0 and "1 records" in out
    status, _, err = await python_m("show")
    assert status == 2 and "--as" in err  # no reading without naming who reads
