"""App identities and certificates from the command line: how the first apps are set up before any
signed request can reach the console, and what operators script.

    python -m bff.apps register wechat-mp --name "微信小程序" --kind FRONT_END --algorithm SM2-SM3
    python -m bff.apps issue wechat-mp --key-out wechat-mp.key.pem      # generates the pair
    python -m bff.apps issue his --public-key his.pub.pem               # certifies the app's own key
    python -m bff.apps renew <serial> [--key-out new.key.pem]
    python -m bff.apps revoke <serial> --reason "key leaked"
    python -m bff.apps list [--expiring-within-days 30]

A generated private key is written once, to ``--key-out`` with mode 0600, and never printed or
stored. Running BFF processes learn of changes through Redis at once when REDIS_URL is set, and
within half a minute otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import timedelta
from pathlib import Path

from bff.keys import KEYRING_INVALIDATION, announce, open_keyring
from bff.security.assembly import certificate_policy
from bff.settings import Settings
from datasources.clock import SystemClock
from datasources.store.audit import AuditLog
from datasources.store.db import Database
from resolvers import apps
from resolvers.apps import IssuedCredentials
from resolvers.errors import DomainError


def _write_key(path: Path, issued: IssuedCredentials) -> None:
    if issued.private_key_pem is None:
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(issued.private_key_pem)
    print(f"private key written to {path} (mode 0600); the BFF keeps no copy")


def _print(issued: IssuedCredentials) -> None:
    cert = issued.certificate
    print(f"certificate {cert.serial} for {cert.app_id}: {cert.algorithm}, valid {cert.not_before} .. {cert.not_after}")
    print(cert.certificate_pem, end="")


async def _run(args: argparse.Namespace) -> int:
    settings = Settings()
    clock = SystemClock()
    db = Database(settings.database_url, pool_size=1, schema=settings.database_schema)
    policy = certificate_policy(settings)
    try:
        keyring = await open_keyring(settings, db, clock)
        audited = apps.Audited(AuditLog(keyring), None, "ADMIN_CLI")
        if args.command == "register":
            app = await apps.register_app(
                db,
                clock,
                app_id=args.app_id,
                name=args.name,
                kind=args.kind,
                algorithm=args.algorithm,
                channel=args.channel,
                sign_responses=args.sign_responses,
                audited=audited,
            )
            print(f"registered {app.app_id} ({app.kind}, {app.signature_algorithm})")
        elif args.command in ("issue", "renew"):
            if args.public_key is None and args.key_out is None:
                print("give --public-key (the app's own key) or --key-out (where to write a generated one)")
                return 2
            if args.key_out is not None and args.key_out.exists():
                print(f"{args.key_out} exists; choose another file")
                return 2
            public = args.public_key.read_text() if args.public_key else None
            if args.command == "issue":
                issued = await apps.issue_certificate(
                    db,
                    keyring,
                    clock,
                    policy,
                    app_id=args.app_id,
                    public_key_pem=public,
                    rsa_bits=args.rsa_bits,
                    valid_days=args.valid_days,
                    audited=audited,
                )
            else:
                issued = await apps.renew_certificate(
                    db,
                    keyring,
                    clock,
                    policy,
                    serial=args.serial,
                    public_key_pem=public,
                    valid_days=args.valid_days,
                    audited=audited,
                )
            if args.key_out is not None:
                _write_key(args.key_out, issued)
            _print(issued)
        elif args.command == "revoke":
            cert = await apps.revoke_certificate(db, clock, serial=args.serial, reason=args.reason, audited=audited)
            print(f"certificate {cert.serial} of {cert.app_id} revoked at {cert.revoked_at}")
        elif args.command == "list":
            now = clock.now()
            before = now + timedelta(days=args.expiring_within_days) if args.expiring_within_days else None
            for row in await apps.apps(db):
                print(f"{row.app_id:20} {row.kind:10} {row.signature_algorithm:11} {row.name}")
            for cert in await apps.app_certificates(db, expiring_before=before):
                print(
                    f"  {cert.serial} {cert.app_id:20} {apps.status_of(cert, now):13} until {cert.not_after:%Y-%m-%d}"
                    f"  used {cert.request_count}× last {cert.last_used_at or '-'}"
                )
        await announce(settings, apps.APPS_INVALIDATION, KEYRING_INVALIDATION)
        return 0
    except DomainError as exc:
        print(f"refused: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bff.apps", description="Apps that call the gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    register = sub.add_parser("register", help="register an app")
    register.add_argument("app_id")
    register.add_argument("--name", required=True)
    register.add_argument("--kind", choices=apps.KINDS, required=True)
    register.add_argument("--algorithm", choices=("SM2-SM3", "RSA-SHA256"), default="SM2-SM3")
    register.add_argument("--channel")
    register.add_argument("--sign-responses", action="store_true")
    for name in ("issue", "renew"):
        cmd = sub.add_parser(name, help=f"{name} a certificate")
        cmd.add_argument("app_id" if name == "issue" else "serial")
        cmd.add_argument("--public-key", type=Path, help="PEM of the app's own public key")
        cmd.add_argument("--key-out", type=Path, help="where to write a generated private key (0600)")
        cmd.add_argument("--valid-days", type=int)
        if name == "issue":
            cmd.add_argument("--rsa-bits", type=int, default=2048, choices=(2048, 3072, 4096))
    revoke = sub.add_parser("revoke", help="revoke a certificate at once")
    revoke.add_argument("serial")
    revoke.add_argument("--reason", required=True)
    listing = sub.add_parser("list", help="apps and certificates")
    listing.add_argument("--expiring-within-days", type=int)
    sys.exit(asyncio.run(_run(parser.parse_args())))


if __name__ == "__main__":
    main()
