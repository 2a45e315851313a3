"""The keyring's assembly and its command line.

    python -m bff.keys list                      # managed keys: purpose, version, state, expiry
    python -m bff.keys rotate FIELD --algorithm SM4GCM
    python -m bff.keys reencrypt [--batch 500]   # move stored values to the active field key
    python -m bff.keys retire field-1            # erase a key nothing refers to any more

Settings (DATABASE_URL, MASTER_KEY or data_dir/master.key) are read as the server reads them.
No command prints key material.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
from pathlib import Path

from bff.settings import Settings
from datasources.clock import Clock, SystemClock
from datasources.store.db import Database
from datasources.store.fieldcrypt import FieldCipher
from datasources.store.keyring import ALGORITHMS, Keyring, MasterKey, set_up
from datasources.store.reencrypt import reencrypt, values_by_key

KEYRING_INVALIDATION = "keyring"


def master_key(settings: Settings) -> bytes:
    """From MASTER_KEY (base64), else from data_dir/master.key, created once with mode 0600."""
    if settings.master_key:
        return base64.b64decode(settings.master_key)
    path = Path(settings.data_dir) / "master.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(base64.b64encode(secrets.token_bytes(32)))
    return base64.b64decode(path.read_bytes())


async def open_keyring(settings: Settings, db: Database, clock: Clock) -> Keyring:
    """The deployment's keys, created on first start, with the configured algorithms active."""
    master = MasterKey(master_key(settings))
    keyring = Keyring(db, master, clock)
    await set_up(
        keyring,
        master,
        field_algorithm=settings.field_encryption_algorithm,
        audit_algorithm=settings.audit_encryption_algorithm,
    )
    return keyring


async def field_cipher(settings: Settings, db: Database, clock: Clock) -> FieldCipher:
    return FieldCipher(await open_keyring(settings, db, clock))


async def _run(args: argparse.Namespace) -> None:
    settings = Settings()
    db = Database(settings.database_url, pool_size=1, schema=settings.database_schema)
    try:
        keyring = await open_keyring(settings, db, SystemClock())
        if args.command == "list":
            used = await values_by_key(db)
            for key in keyring.keys():
                expiry = key.expires_at.isoformat() if key.expires_at else "-"
                print(f"{key.kid:16} {key.purpose:16} v{key.version:<3} {key.algorithm:14} {key.state:12} "
                      f"expires {expiry:25} values {used.get(key.kid, 0)}")
        elif args.command == "rotate":
            key = await keyring.rotate(args.purpose, args.algorithm)
            print(f"{key.purpose}: {key.kid} ({key.algorithm}) is active; run `reencrypt` to move old values")
        elif args.command == "reencrypt":
            report = await reencrypt(db, FieldCipher(keyring), batch_size=args.batch, pause_s=args.pause)
            for column, count in sorted(report.rewritten.items()):
                print(f"{column}: {count} rewritten")
            print(f"{report.total} values rewritten; now sealed per key: {dict(await values_by_key(db))}")
        elif args.command == "retire":
            used = await values_by_key(db)
            await keyring.retire(args.kid, still_used=used.get(args.kid, 0))
            print(f"{args.kid} retired: its material is erased")
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bff.keys", description="Managed keys of the BFF")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="managed keys and how many stored values each seals")
    rotate = sub.add_parser("rotate", help="a new active version of a purpose's key")
    rotate.add_argument("purpose", choices=sorted(ALGORITHMS))
    rotate.add_argument("--algorithm", help="e.g. SM4GCM or A256GCM for FIELD")
    again = sub.add_parser("reencrypt", help="move stored values to the active field key")
    again.add_argument("--batch", type=int, default=500)
    again.add_argument("--pause", type=float, default=0.05, help="seconds between batches")
    retire = sub.add_parser("retire", help="erase a key nothing refers to any more")
    retire.add_argument("kid")
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
