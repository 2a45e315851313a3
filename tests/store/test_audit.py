"""The audit log: sealed record by record, hash-chained, verified, kept at least six months."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import asdict
from datetime import UTC, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import delete, select, update
from sqlmodel import col

from bff.keys import open_keyring
from bff.settings import Settings
from datasources.clock import FixedClock
from datasources.crypto.primitives import CryptoError
from datasources.store.audit import GENESIS, AuditChainBroken, AuditLog, entry_hash, open_record, retention_cutoff
from datasources.store.audit_chain import verify
from datasources.store.db import Database
from datasources.store.keyring import AUDIT, Keyring
from datasources.store.models import AuditChainHead, AuditEntry, AuditRecord
from datasources.store.reencrypt import values_by_key
from tests.factories import resident_id

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture
async def keyring(settings: Settings, db: Database, clock: FixedClock) -> Keyring:
    return await open_keyring(settings, db, clock)


@pytest.fixture
def audit(keyring: Keyring) -> AuditLog:
    return AuditLog(keyring)


async def write(audit: AuditLog, db: Database, clock: FixedClock, n: int, *, days_ago: float = 0) -> list[int]:
    """``n`` records, one transaction each, as staff actions leave them."""
    seqs = []
    for i in range(n):
        async with db.writing() as s:
            seqs.append(
                await audit.record(
                    s,
                    at=clock.now() - timedelta(days=days_ago),
                    actor_account_id=100 + i,
                    actor_role="DOCTOR",
                    action=f"queue.call_next.{i}",
                    target_type="schedule",
                    target_id=str(i),
                    detail={"number": i},
                    request_id=f"req-{i}",
                )
            )
    return seqs


async def rows(db: Database) -> list[AuditRecord]:
    async with db.reading() as s:
        return list((await s.execute(select(AuditRecord).order_by(col(AuditRecord.seq)))).scalars().all())


async def tamper(db: Database, seq: int, **values: object) -> None:
    async with db.writing() as s:
        await s.execute(update(AuditRecord).where(col(AuditRecord.seq) == seq).values(**values))


async def test_a_record_reaches_the_database_sealed_with_sm4_and_opens_for_its_readers(
    audit: AuditLog, db: Database, clock: FixedClock, keyring: Keyring
) -> None:
    number = resident_id()
    async with db.writing() as s:
        seq = await audit.record(
            s,
            at=clock.now(),
            actor_account_id=7,
            actor_role="OPERATOR",
            action="patient.unmasked_read",
            target_type="patient",
            target_id="patient-4711",
            detail={"name": "张三", "documentNumber": number, "phone": "13800138000"},
            request_id="req-1",
        )
    [row] = await rows(db)
    assert row.seq == seq == 1
    assert keyring.get(row.key_id).algorithm == "SM4GCM" and row.key_id == keyring.active(AUDIT).kid
    stored = json.dumps(row.model_dump(mode="json"), ensure_ascii=False)
    for personal in (number, "张三", "13800138000", "req-1", "patient-4711"):
        assert personal not in stored
    assert (row.action, row.actor_role, row.at) == ("patient.unmasked_read", "OPERATOR", clock.now())
    assert row.prev_hash == GENESIS and row.entry_hash == entry_hash(GENESIS, 1, row.key_id, row.sealed)
    [event] = await audit.read(db)
    assert (event.actor_account_id, event.target_type, event.target_id, event.request_id) == (7, "patient", "patient-4711", "req-1")
    assert event.detail == {"name": "张三", "documentNumber": number, "phone": "13800138000"}
    assert event.at == clock.now()


async def test_the_algorithm_setting_seals_new_records_with_aes_and_old_ones_still_open(
    settings: Settings, db: Database, clock: FixedClock
) -> None:
    await write(AuditLog(await open_keyring(settings, db, clock)), db, clock, 2)
    switched = await open_keyring(settings.model_copy(update={"audit_encryption_algorithm": "A256GCM"}), db, clock)
    audit = AuditLog(switched)
    await write(audit, db, clock, 1)
    kids = [row.key_id for row in await rows(db)]
    # The switch itself is recorded (by the system, with the new key) between the old and new records.
    assert [switched.get(kid).algorithm for kid in kids] == ["SM4GCM", "SM4GCM", "A256GCM", "A256GCM"]
    assert (await verify(db, switched)).ok
    events = await audit.read(db)
    assert [(e.actor_role, e.action) for e in events][2] == ("SYSTEM", "key.rotated")
    assert len(events) == 4


async def test_a_record_lands_with_its_transaction_or_not_at_all(audit: AuditLog, db: Database, clock: FixedClock) -> None:
    with pytest.raises(RuntimeError):
        async with db.writing() as s:
            await audit.record(
                s, at=clock.now(), actor_account_id=1, actor_role="DOCTOR", action="x", target_type="t", target_id="1"
            )
            raise RuntimeError("the action failed")
    assert await rows(db) == []
    assert await write(audit, db, clock, 1) == [1]
    assert (await verify(db, audit.keyring)).ok


async def test_each_record_chains_to_the_previous_and_the_whole_chain_verifies(
    audit: AuditLog, db: Database, clock: FixedClock
) -> None:
    await write(audit, db, clock, 5)
    chain = await rows(db)
    assert [r.seq for r in chain] == [1, 2, 3, 4, 5]
    assert [r.prev_hash for r in chain[1:]] == [r.entry_hash for r in chain[:-1]]
    result = await verify(db, audit.keyring)
    assert (result.ok, result.records, result.opened, result.last_seq) == (True, 5, 5, 5)
    assert result.broken_seq is None


async def test_an_altered_byte_of_a_sealed_record_is_found_at_that_record(
    audit: AuditLog, db: Database, clock: FixedClock
) -> None:
    await write(audit, db, clock, 6)
    sealed = bytearray(base64.b64decode((await rows(db))[2].sealed))
    sealed[20] ^= 0x01
    await tamper(db, 3, sealed=base64.b64encode(bytes(sealed)).decode())
    result = await verify(db, audit.keyring)
    assert result.broken_seq == 3 and "altered" in (result.reason or "")
    assert [seq for seq, _ in result.problems] == [3]
    assert result.opened == 5


async def test_a_changed_readable_action_is_found_at_that_record(audit: AuditLog, db: Database, clock: FixedClock) -> None:
    await write(audit, db, clock, 6)
    await tamper(db, 4, action="login")
    result = await verify(db, audit.keyring)
    assert result.broken_seq == 4 and "action" in (result.reason or "")


async def test_a_deleted_record_in_the_middle_is_found_by_its_missing_number(
    audit: AuditLog, db: Database, clock: FixedClock
) -> None:
    await write(audit, db, clock, 6)
    async with db.writing() as s:
        await s.execute(delete(AuditRecord).where(col(AuditRecord.seq) == 3))
    result = await verify(db, audit.keyring)
    assert result.broken_seq == 3 and "missing" in (result.reason or "")
    assert [seq for seq, _ in result.problems] == [3]


async def test_deleting_the_last_records_is_found_through_the_chain_head(
    audit: AuditLog, db: Database, clock: FixedClock
) -> None:
    await write(audit, db, clock, 6)
    async with db.writing() as s:
        await s.execute(delete(AuditRecord).where(col(AuditRecord.seq) >= 5))
    result = await verify(db, audit.keyring)
    assert result.broken_seq == 5 and "chain head" in (result.reason or "")


async def test_two_records_whose_sealed_values_were_swapped_are_both_found(
    audit: AuditLog, db: Database, clock: FixedClock
) -> None:
    await write(audit, db, clock, 6)
    chain = await rows(db)
    await tamper(db, 2, sealed=chain[4].sealed)
    await tamper(db, 5, sealed=chain[1].sealed)
    result = await verify(db, audit.keyring)
    assert [seq for seq, _ in result.problems] == [2, 5]
    assert result.opened == 4  # each is bound to its own number: neither opens in the other's place


async def forge(audit: AuditLog, db: Database, seq: int) -> None:
    """What someone holding the key could do: reseal record ``seq`` saying something else, with the
    same readable columns, and recompute its own hash (but not the hashes after it)."""
    row = (await rows(db))[seq - 1]
    event = open_record(audit.keyring, row)
    body = {**asdict(event), "at": event.at.astimezone(UTC).isoformat(), "target_id": "somebody else"}
    del body["seq"]
    key_id, sealed = audit._seal(seq, body)
    await tamper(db, seq, key_id=key_id, sealed=sealed, entry_hash=entry_hash(row.prev_hash, seq, key_id, sealed))


async def test_a_record_rewritten_with_a_fresh_hash_is_caught_by_the_next_ones_link(
    audit: AuditLog, db: Database, clock: FixedClock
) -> None:
    await write(audit, db, clock, 6)
    await forge(audit, db, 3)
    assert (await audit.read(db))[2].target_id == "somebody else"  # opens fine, hash fits its content
    result = await verify(db, audit.keyring)
    assert result.broken_seq == 3 and "record 4 chained to another hash" in (result.reason or "")
    assert [seq for seq, _ in result.problems] == [3]


async def test_the_last_record_rewritten_with_a_fresh_hash_is_caught_by_the_chain_head(
    audit: AuditLog, db: Database, clock: FixedClock
) -> None:
    await write(audit, db, clock, 3)
    await forge(audit, db, 3)
    result = await verify(db, audit.keyring)
    assert result.broken_seq == 3 and "chain head" in (result.reason or "")
    assert [seq for seq, _ in result.problems] == [3]


async def test_records_whose_key_was_retired_by_mistake_are_reported_unreadable(
    audit: AuditLog, db: Database, clock: FixedClock, keyring: Keyring
) -> None:
    await write(audit, db, clock, 2)
    old = keyring.active(AUDIT).kid
    await keyring.rotate(AUDIT)
    await write(audit, db, clock, 1)
    used = await values_by_key(db)
    assert used[old] == 2  # what `bff.keys retire` consults: it refuses while records need the key
    with pytest.raises(CryptoError, match="run the re-encryption job first"):
        await keyring.retire(old, still_used=used[old])
    await keyring.retire(old, still_used=0)  # forced anyway
    result = await verify(db, keyring)
    assert [seq for seq, _ in result.problems] == [1, 2]
    assert "unknown or retired" in (result.reason or "") and result.opened == 1


async def test_an_anchor_moved_without_a_purge_is_found(audit: AuditLog, db: Database, clock: FixedClock) -> None:
    await write(audit, db, clock, 5)
    chain = await rows(db)
    async with db.writing() as s:  # drop the first two records and move the anchor to hide it
        await s.execute(delete(AuditRecord).where(col(AuditRecord.seq) <= 2))
        await s.execute(update(AuditChainHead).values(anchor_seq=2, anchor_hash=chain[1].entry_hash))
    result = await verify(db, audit.keyring)
    assert result.broken_seq == 3 and "not set by a purge" in (result.reason or "")


async def test_twenty_concurrent_transactions_each_recording_make_one_linear_chain(
    audit: AuditLog, db: Database, clock: FixedClock
) -> None:
    async def staff_action(i: int) -> int:
        async with db.writing() as s:
            await s.execute(select(col(AuditChainHead.id)))  # the transaction is under way before it records
            await asyncio.sleep(0.005)
            return await audit.record(
                s, at=clock.now(), actor_account_id=i, actor_role="DOCTOR", action="queue.call_next",
                target_type="schedule", target_id=str(i),
            )

    seqs = await asyncio.gather(*(staff_action(i) for i in range(20)))
    assert sorted(seqs) == list(range(1, 21))
    chain = await rows(db)
    assert [r.seq for r in chain] == list(range(1, 21))
    assert [r.prev_hash for r in chain] == [GENESIS] + [r.entry_hash for r in chain[:-1]]
    result = await verify(db, audit.keyring)
    assert result.ok and result.records == 20
    assert sorted(e.actor_account_id or 0 for e in await audit.read(db, limit=100)) == list(range(20))


def test_a_retention_shorter_than_six_months_is_refused(clock: FixedClock) -> None:
    with pytest.raises(ValidationError, match="at least 6 months"):
        Settings(audit_retention_days=182)
    assert Settings(audit_retention_days=183).audit_retention_days == 183
    assert Settings().audit_retention_days == 190
    with pytest.raises(ValueError, match="at least 6 months"):
        retention_cutoff(clock.now(), 90)


async def test_the_purge_deletes_expired_records_oldest_first_and_moves_the_anchor(
    audit: AuditLog, db: Database, clock: FixedClock
) -> None:
    await write(audit, db, clock, 3, days_ago=200)
    await write(audit, db, clock, 1, days_ago=100)
    await write(audit, db, clock, 1, days_ago=195)  # old, but after a recent one: kept with it
    await write(audit, db, clock, 1)
    chain = await rows(db)
    purged = await audit.purge(db, before=retention_cutoff(clock.now(), 190), at=clock.now())
    assert (purged.records, purged.anchor_seq, purged.anchor_hash) == (3, 3, chain[2].entry_hash)
    left = await rows(db)
    assert [r.seq for r in left] == [4, 5, 6, 7]
    assert left[-1].action == "audit.purge"
    [event] = await audit.read(db, action="audit.purge")
    assert event.detail["anchor_seq"] == 3 and event.detail["records"] == 3
    result = await verify(db, audit.keyring)
    assert (result.ok, result.anchor_seq, result.records) == (True, 3, 4)
    again = await audit.purge(db, before=retention_cutoff(clock.now(), 190), at=clock.now())
    assert again.records == 0 and len(await rows(db)) == 4


async def test_the_purge_never_cuts_into_six_months(audit: AuditLog, db: Database, clock: FixedClock) -> None:
    await write(audit, db, clock, 2, days_ago=100)
    with pytest.raises(ValueError, match="at least 6 months"):
        await audit.purge(db, before=clock.now() - timedelta(days=90), at=clock.now())
    assert len(await rows(db)) == 2


async def test_the_purge_refuses_to_delete_records_that_do_not_verify(
    audit: AuditLog, db: Database, clock: FixedClock
) -> None:
    await write(audit, db, clock, 4, days_ago=300)
    await tamper(db, 2, action="login")
    with pytest.raises(AuditChainBroken) as refused:
        await audit.purge(db, before=retention_cutoff(clock.now(), 190), at=clock.now())
    assert refused.value.seq == 2
    assert len(await rows(db)) == 4


async def test_legacy_plain_rows_are_sealed_into_the_chain_and_deleted(
    audit: AuditLog, db: Database, clock: FixedClock
) -> None:
    await write(audit, db, clock, 1)
    async with db.writing() as s:
        for i, action in enumerate(("login.failed", "login")):
            s.add(
                AuditEntry(
                    at=clock.now() - timedelta(days=3 - i), actor_account_id=5, actor_role="DOCTOR", action=action,
                    target_type="account", target_id="5", detail=json.dumps({"channel": "DOCTOR_H5"}),
                    request_id=f"old-{i}",
                )
            )
    assert await audit.seal_legacy(db, at=clock.now()) == 2
    async with db.reading() as s:
        assert (await s.execute(select(AuditEntry))).scalars().all() == []
    events = await audit.read(db)
    assert [e.action for e in events] == ["queue.call_next.0", "login.failed", "login", "audit.seal_legacy"]
    assert events[1].detail == {"channel": "DOCTOR_H5"} and events[1].request_id == "old-0"
    assert events[1].at == clock.now() - timedelta(days=3)
    assert (await verify(db, audit.keyring)).ok
    assert await audit.seal_legacy(db, at=clock.now()) == 0
