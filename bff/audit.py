"""The audit log's command line.

    python -m bff.audit verify                      # walk the chain from its anchor; exit 1 when broken
    python -m bff.audit show --as USERNAME [--since 2026-11-01] [--action login] [--limit 50]
    python -m bff.audit purge [--before 2026-05-01] # retention: default AUDIT_RETENTION_DAYS ago
    python -m bff.audit seal-legacy                 # move the plain audit_log rows into the chain

Settings (DATABASE_URL, MASTER_KEY or data_dir/master.key, AUDIT_RETENTION_DAYS) are read as the
server reads them. Only ``show`` prints personal data: it decrypts records for an operator whose
roles grant ``audit.read``, named by ``--as``, and first appends an ``audit.read`` record naming
them, so every reading of the log is itself in the log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from datetime import date, datetime
from typing import TextIO

from sqlalchemy import select
from sqlmodel import col

from bff.keys import open_keyring
from bff.settings import Settings
from datasources.clock import SHANGHAI, Clock, SystemClock
from datasources.store.audit import READ_PERMISSION, AuditChainBroken, AuditEvent, AuditLog, retention_cutoff
from datasources.store.audit_chain import verify
from datasources.store.db import Database
from datasources.store.models import Account, AccountRole, RolePermission, StaffCredential
from resolvers.identity import OPERATOR


class Refused(Exception):
    """The command cannot be carried out as asked; the message says why."""


async def authorized_reader(db: Database, username: str) -> int:
    """The account id of ``username`` if it is an active operator whose roles grant audit.read."""
    async with db.reading() as s:
        account = (
            await s.execute(
                select(Account)
                .join(StaffCredential, col(StaffCredential.account_id) == col(Account.id))
                .where(col(StaffCredential.username) == username.strip())
            )
        ).scalar_one_or_none()
        if account is None or account.role != OPERATOR or account.disabled_at is not None:
            raise Refused(f"{username!r} is not an active operator account: only operators may read the audit log")
        granted = (
            await s.execute(
                select(col(RolePermission.permission))
                .join(AccountRole, col(AccountRole.role_id) == col(RolePermission.role_id))
                .where(col(AccountRole.account_id) == account.id, col(RolePermission.permission) == READ_PERMISSION)
            )
        ).first()
    if granted is None:
        raise Refused(f"{username!r} holds no role granting {READ_PERMISSION}: the audit log stays closed to them")
    return account.id or 0


def _day(text: str) -> datetime:
    """A YYYY-MM-DD date: midnight in the hospital (Asia/Shanghai)."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    return datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)


def _line(event: AuditEvent) -> str:
    who = f"{event.actor_role}#{event.actor_account_id}" if event.actor_account_id is not None else event.actor_role
    detail = json.dumps(event.detail, ensure_ascii=False, sort_keys=True)
    at = event.at.astimezone(SHANGHAI).isoformat(timespec="seconds")
    request = f" request={event.request_id}" if event.request_id else ""
    target = f"{event.target_type}:{event.target_id}"
    return f"{event.seq:>8}  {at}  {who:<14} {event.action:<20} {target}  {detail}{request}"


async def run(
    argv: list[str], *, settings: Settings | None = None, clock: Clock | None = None, out: TextIO = sys.stdout
) -> int:
    """Runs one command; returns the exit status."""
    args = _parser().parse_args(argv)
    settings = settings or Settings()
    clock = clock or SystemClock()
    db = Database(settings.database_url, pool_size=1, schema=settings.database_schema)
    try:
        keyring = await open_keyring(settings, db, clock)
        log = AuditLog(keyring)
        if args.command == "verify":
            result = await verify(db, keyring)
            print(
                f"audit chain: {result.records} records after anchor {result.anchor_seq}, "
                f"last {result.last_seq}, {result.opened} opened",
                file=out,
            )
            if result.ok:
                print("verified: every hash, link and record holds", file=out)
                return 0
            for seq, reason in result.problems[:20]:
                print(f"BROKEN at record {seq}: {reason}", file=out)
            if len(result.problems) > 20:
                print(f"... and {len(result.problems) - 20} more problems", file=out)
            return 1
        if args.command == "show":
            reader = await authorized_reader(db, args.reader)
            now = clock.now()
            async with db.writing() as s:
                await log.record(
                    s,
                    at=now,
                    actor_account_id=reader,
                    actor_role=OPERATOR,
                    action=READ_PERMISSION,
                    target_type="audit_log",
                    target_id="",
                    detail={
                        "via": "bff.audit show",
                        "since": args.since.isoformat() if args.since else None,
                        "action": args.action,
                        "limit": args.limit,
                    },
                    request_id=f"cli-{uuid.uuid4().hex[:16]}",
                )
            for event in await log.read(db, since=args.since, action=args.action, limit=args.limit):
                print(_line(event), file=out)
            return 0
        if args.command == "purge":
            now = clock.now()
            before = args.before or retention_cutoff(now, settings.audit_retention_days)
            purged = await log.purge(db, before=before, at=now)
            print(
                f"{purged.records} records older than {before.isoformat()} purged; "
                f"the chain now starts after record {purged.anchor_seq}",
                file=out,
            )
            return 0
        if args.command == "seal-legacy":
            moved = await log.seal_legacy(db, at=clock.now())
            print(f"{moved} legacy audit_log rows sealed into the chain and deleted", file=out)
            return 0
        raise AssertionError(args.command)
    except (Refused, AuditChainBroken, ValueError) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    finally:
        await db.dispose()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bff.audit", description="The BFF's sealed audit log")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("verify", help="recompute every hash and open every record; exit 1 when the chain is broken")
    show = sub.add_parser("show", help="decrypt and print records (personal data) for an operator with audit.read")
    show.add_argument("--as", dest="reader", required=True, metavar="USERNAME", help="the operator reading")
    show.add_argument("--since", type=_day, help="records at or after this date (YYYY-MM-DD, Asia/Shanghai)")
    show.add_argument("--action", help="only this action, e.g. login or queue.call_next")
    show.add_argument("--limit", type=int, default=50, help="the latest N matching records (default 50)")
    purge = sub.add_parser("purge", help="delete records past the retention and move the chain's anchor")
    purge.add_argument("--before", type=_day, help="cut-off date; at least 183 days ago (default: the retention)")
    sub.add_parser("seal-legacy", help="move the rows of the plain audit_log table into the chain, sealed")
    return parser


def main() -> None:
    sys.exit(asyncio.run(run(sys.argv[1:])))


if __name__ == "__main__":
    main()
