"""Staff second factors from the BFF's host: the way an operator gets one in production.

    python -m bff.staff totp-enroll USERNAME   # prints the otpauth:// URI, then asks for the app's first code
    python -m bff.staff totp-reset USERNAME    # a lost phone: the factor goes, the person enrolls again

In production an operator without a confirmed factor cannot log in at all, so the first enrollment
happens here, run by an administrator with the person and their phone at hand, not through a
password-only session (whoever stole a password could otherwise enroll their own phone). Staff who
can log in may also enroll from their app (``beginSecondFactorEnrollment``). Settings are read as
the server reads them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from sqlalchemy import select
from sqlmodel import col

from bff.keys import field_cipher
from bff.settings import Settings
from datasources.clock import SystemClock
from datasources.store.db import Database
from datasources.store.models import StaffCredential
from resolvers import second_factor
from resolvers.errors import DomainError


async def _account_id(db: Database, username: str) -> int | None:
    async with db.reading() as s:
        found = await s.execute(
            select(col(StaffCredential.account_id)).where(col(StaffCredential.username) == username)
        )
        return found.scalar_one_or_none()


async def _run(args: argparse.Namespace) -> int:
    settings = Settings()
    db = Database(settings.database_url, pool_size=1, schema=settings.database_schema)
    clock = SystemClock()
    try:
        if args.command == "totp-reset":
            if not await second_factor.reset(db, username=args.username):
                print(f"no staff account {args.username!r}", file=sys.stderr)
                return 1
            print(f"{args.username}: second factor removed; they enroll again (totp-enroll)")
            return 0
        account_id = await _account_id(db, args.username)
        if account_id is None:
            print(f"no staff account {args.username!r}", file=sys.stderr)
            return 1
        cipher = await field_cipher(settings, db, clock)
        enrollment = await second_factor.begin_enrollment(
            db, cipher, account_id=account_id, issuer=settings.totp_issuer
        )
        print("Add this to the authenticator app (as a QR code, or type the secret in):")
        print(f"  {enrollment.uri}")
        print(f"  secret: {enrollment.secret}   (TOTP, SHA-1, 6 digits, 30 s)")
        code = await asyncio.to_thread(input, "The code the app shows now: ")
        await second_factor.confirm(db, cipher, clock, account_id=account_id, code=code)
        print(f"{args.username}: second factor active; every login now needs a code from the app")
        return 0
    except DomainError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bff.staff", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, what in (("totp-enroll", "enroll an authenticator app"), ("totp-reset", "remove the second factor")):
        command = commands.add_parser(name, help=what)
        command.add_argument("username")
    sys.exit(asyncio.run(_run(parser.parse_args())))


if __name__ == "__main__":
    main()
