"""The keyring's assembly and its command line.

    python -m bff.keys list                      # managed keys: purpose, version, state, expiry
    python -m bff.keys rotate FIELD --algorithm SM4GCM
    python -m bff.keys reencrypt [--batch 500]   # move stored values to the active field key
    python -m bff.keys retire field-1            # erase a key nothing refers to any more
    python -m bff.keys hsm-init                  # create the master key in the PKCS#11 token if missing
    python -m bff.keys rewrap                    # move managed keys from the file master key to the HSM
    python -m bff.keys rewrap --to-file          # ... and back

Settings (DATABASE_URL, MASTER_KEY or data_dir/master.key, MASTER_KEY_PKCS11_*) are read as the
server reads them. No command prints key material.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from bff.settings import Settings
from datasources.clock import Clock, SystemClock
from datasources.crypto.primitives import CryptoError
from datasources.store.audit import AuditLog
from datasources.store.db import Database
from datasources.store.fieldcrypt import FieldCipher
from datasources.store.keyring import ALGORITHMS, AUDIT, FIELD, KeyEncryptionKey, Keyring, MasterKey, set_up
from datasources.store.reencrypt import reencrypt, values_by_key
from realtime.broker import broker_from_url
from realtime.invalidations import TOPIC

KEYRING_INVALIDATION = "keyring"


def master_key(settings: Settings, *, create: bool = True) -> bytes:
    """From MASTER_KEY (base64), else from data_dir/master.key, created once with mode 0600."""
    if settings.master_key:
        return base64.b64decode(settings.master_key)
    path = Path(settings.data_dir) / "master.key"
    if not path.exists() and not create:
        raise SystemExit(f"no file master key: MASTER_KEY is unset and {path} does not exist")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(base64.b64encode(secrets.token_bytes(32)))
    return base64.b64decode(path.read_bytes())


def hsm_key_encryption_key(settings: Settings) -> KeyEncryptionKey:
    """The master key in the PKCS#11 token of MASTER_KEY_PKCS11_* (python-pkcs11: the `hsm` extra)."""
    from datasources.store.hsm import Pkcs11KeyEncryptionKey

    module, token, pin = _pkcs11_settings(settings)
    return Pkcs11KeyEncryptionKey(module, token, pin, settings.master_key_pkcs11_key_label)


def _pkcs11_settings(settings: Settings) -> tuple[str, str, str]:
    module, token = settings.master_key_pkcs11_module, settings.master_key_pkcs11_token
    pin = settings.master_key_pkcs11_pin
    if not module or not token or pin is None:
        raise SystemExit("the HSM is not configured: set MASTER_KEY_PKCS11_MODULE, _TOKEN and _PIN")
    return module, token, pin.get_secret_value()


def key_encryption_key(settings: Settings) -> KeyEncryptionKey:
    """The HSM's key when MASTER_KEY_PKCS11_MODULE is set, else the file or environment master key."""
    if settings.master_key_pkcs11_module:
        return hsm_key_encryption_key(settings)
    return MasterKey(master_key(settings))


async def open_keyring(settings: Settings, db: Database, clock: Clock) -> Keyring:
    """The deployment's keys, created on first start, with the configured algorithms active."""
    kek = key_encryption_key(settings)
    keyring = Keyring(db, kek, clock)
    switched = await set_up(
        keyring,
        # Only the file master key has keys from before managed keys to take over.
        kek if isinstance(kek, MasterKey) else None,
        field_algorithm=settings.field_encryption_algorithm,
        audit_algorithm=settings.audit_encryption_algorithm,
    )
    for key in switched:
        detail = {"purpose": key.purpose, "algorithm": key.algorithm, "by": "setting"}
        await _record(db, keyring, "key.rotated", key.kid, detail, actor="SYSTEM")
    keyring.switched_by_settings = [key.kid for key in switched]
    return keyring


async def field_cipher(settings: Settings, db: Database, clock: Clock) -> FieldCipher:
    return FieldCipher(await open_keyring(settings, db, clock))


async def _rewrap(settings: Settings, db: Database, *, to_file: bool) -> None:
    from datasources.store.hsm import rewrap

    hsm = hsm_key_encryption_key(settings)
    # Moving to the HSM reads the existing file master key (never a new one); moving back may create it.
    file = MasterKey(master_key(settings, create=to_file))
    old, new = (hsm, file) if to_file else (file, hsm)
    report = await rewrap(db, old, new)
    print(
        f"{len(report.rewrapped)} managed keys rewrapped, {len(report.already)} were already wrapped by "
        f"{new.kek_id}, {report.retired} retired (no material)"
    )
    if to_file:
        print("unset MASTER_KEY_PKCS11_MODULE before starting the BFF again")
    else:
        print("the BFF now needs MASTER_KEY_PKCS11_*; keep the file master key offline until you have checked")


def _hsm_init(settings: Settings) -> None:
    from datasources.store.hsm import create_key

    module, token, pin = _pkcs11_settings(settings)
    created = create_key(module, token, pin, settings.master_key_pkcs11_key_label)
    kek = hsm_key_encryption_key(settings)
    done = f"created {', '.join(created)}" if created else "already there"
    print(f"token {token!r}: key {settings.master_key_pkcs11_key_label!r} {done}; kek id {kek.kek_id}")


async def _run(args: argparse.Namespace) -> int:
    settings = Settings()
    if args.command == "hsm-init":
        try:
            _hsm_init(settings)
        finally:
            _release_hsm(settings)
        return 0
    db = Database(settings.database_url, pool_size=1, schema=settings.database_schema)
    try:
        if args.command == "rewrap":
            await _rewrap(settings, db, to_file=args.to_file)
            return 0
        keyring = await open_keyring(settings, db, SystemClock())
        if args.command == "list":
            used = await values_by_key(db)
            for key in keyring.keys():
                expiry = key.expires_at.isoformat() if key.expires_at else "-"
                print(
                    f"{key.kid:16} {key.purpose:16} v{key.version:<3} {key.algorithm:14} {key.state:12} "
                    f"expires {expiry:25} values {used.get(key.kid, 0)}"
                )
        elif args.command == "rotate":
            configured = {FIELD: settings.field_encryption_algorithm, AUDIT: settings.audit_encryption_algorithm}
            wanted = configured.get(args.purpose)
            if args.algorithm and wanted and args.algorithm != wanted:
                print(
                    f"{args.purpose} keys follow the setting ({wanted}). To switch to {args.algorithm}, set "
                    f"{'FIELD' if args.purpose == FIELD else 'AUDIT'}_ENCRYPTION_ALGORITHM={args.algorithm} for every "
                    "process: the first to start with it makes the new key."
                )
                return 2
            active = keyring.active(args.purpose)
            if active.kid in keyring.switched_by_settings:
                key = active  # opening the keyring just switched it to the configured algorithm
            else:
                key = await keyring.rotate(args.purpose, args.algorithm or wanted)
                await _record(db, keyring, "key.rotated", key.kid, {"purpose": key.purpose, "algorithm": key.algorithm})
            await announce(settings, KEYRING_INVALIDATION)
            print(f"{key.purpose}: {key.kid} ({key.algorithm}) is active; run `reencrypt` to move old values")
        elif args.command == "reencrypt":
            report = await reencrypt(db, FieldCipher(keyring), batch_size=args.batch, pause_s=args.pause)
            for column, count in sorted(report.rewritten.items()):
                print(f"{column}: {count} rewritten")
            await _record(db, keyring, "key.reencrypted", keyring.active(FIELD).kid, dict(report.rewritten))
            print(f"{report.total} values rewritten; now sealed per key: {dict(await values_by_key(db))}")
        elif args.command == "retire":
            used = await values_by_key(db)
            await keyring.retire(args.kid, still_used=used.get(args.kid, 0))
            await _record(db, keyring, "key.retired", args.kid, {})
            await announce(settings, KEYRING_INVALIDATION)
            print(f"{args.kid} retired: its material is erased")
        return 0
    except CryptoError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    finally:
        await db.dispose()
        _release_hsm(settings)


async def _record(
    db: Database, keyring: Keyring, action: str, kid: str, detail: dict[str, Any], *, actor: str = "ADMIN_CLI"
) -> None:
    """Key changes land in the audit log: made by the administrator at the CLI, or by the system
    when a process starts with a new algorithm setting."""
    async with db.writing() as session:
        await AuditLog(keyring).record(
            session,
            at=SystemClock().now(),
            actor_account_id=None,
            actor_role=actor,
            action=action,
            target_type="managed_key",
            target_id=kid,
            detail=detail,
        )


async def announce(settings: Settings, *keys: str) -> None:
    """Tells running BFF processes to reload (through Redis); without it they reload on their own
    within KEYRING_REFRESH_SECONDS (keys) or half a minute (apps)."""
    if not settings.redis_url:
        return
    broker = broker_from_url(settings.redis_url, namespace=settings.broker_namespace)
    await broker.start()
    try:
        await broker.publish(TOPIC, {"keys": list(keys)})
    finally:
        await broker.close()


def _release_hsm(settings: Settings) -> None:
    if settings.master_key_pkcs11_module:
        from datasources.store.hsm import release

        release()


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
    sub.add_parser("hsm-init", help="create the master key in the PKCS#11 token (MASTER_KEY_PKCS11_*) if missing")
    move = sub.add_parser("rewrap", help="rewrap every managed key from the file master key to the HSM")
    move.add_argument("--to-file", action="store_true", help="the other way: from the HSM to the file master key")
    sys.exit(asyncio.run(_run(parser.parse_args())))


if __name__ == "__main__":
    main()
