"""The running app keeps its audit log sealed and chained, and applies the retention by itself."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from bff.app import create_app
from bff.keys import open_keyring
from datasources.clock import FixedClock
from datasources.store.audit import AuditLog
from datasources.store.audit_chain import verify
from datasources.store.db import Database
from datasources.store.models import AuditChainHead
from tests.conftest import DatabaseTarget, LiveServer, make_settings
from tests.e2e.test_queue_live import call_next, doctor_client, same_day
from tests.factories import Hospital


async def test_calling_the_next_patient_is_audited_in_the_sealed_chain(server: LiveServer) -> None:
    hospital = await Hospital(server.deps.db, server.deps.clock).build()
    schedule_id, [slot_id] = await hospital.session(starts=[(9, 30)])
    await same_day(await hospital.patient(server.url, name="李四"), slot_id)
    doctor = await doctor_client(server, hospital)
    assert await call_next(doctor, schedule_id) == 1

    events = await server.deps.audit.read(server.deps.db)
    assert [e.action for e in events] == ["login", "queue.call_next"]
    called = events[-1]
    assert (called.actor_role, called.target_type, called.target_id) == ("DOCTOR", "schedule", schedule_id)
    assert called.actor_account_id == events[0].actor_account_id and called.detail["number"] == 1
    assert called.request_id  # the request it came from, to find it in the other logs
    assert (await verify(server.deps.db, server.deps.audit.keyring)).ok


async def test_the_app_purges_records_past_the_retention_by_itself(
    database: DatabaseTarget, tmp_path: Path, clock: FixedClock
) -> None:
    settings = make_settings(database, tmp_path, audit_purge_seconds=0.05, audit_retention_days=183)
    db = Database(database.url, schema=database.schema)
    audit = AuditLog(await open_keyring(settings, db, clock))
    for days_ago in (200, 190, 10):
        async with db.writing() as s:
            await audit.record(
                s, at=clock.now() - timedelta(days=days_ago), actor_account_id=1, actor_role="DOCTOR",
                action="login", target_type="account", target_id="1",
            )
    live = await LiveServer(create_app(settings, clock=clock)).start()
    try:
        for _ in range(200):
            async with db.reading() as s:
                head = (await s.execute(select(AuditChainHead))).scalar_one()
            if head.anchor_seq:
                break
            await asyncio.sleep(0.02)
        assert head.anchor_seq == 2
        assert [e.action for e in await audit.read(db)] == ["login", "audit.purge"]
        assert (await verify(db, audit.keyring)).ok
    finally:
        await live.stop()
        await db.dispose()
