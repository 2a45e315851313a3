"""The master key in an HSM, against SoftHSM2: a real PKCS#11 token made for this module in a temp dir.

Without softhsm2-util these tests skip, unless TEST_REQUIRE_SERVICES=1 (CI), where they fail.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from bff.keys import open_keyring
from datasources.clock import FixedClock
from datasources.crypto.primitives import CryptoError
from datasources.store.db import Database
from datasources.store.keyring import AUDIT, BLIND_INDEX, FIELD, Keyring, MasterKey, set_up
from datasources.store.metadata import metadata
from datasources.store.models import ManagedKey
from tests.conftest import MONDAY_0910, TEST_MASTER_KEY, DatabaseTarget, make_settings

if TYPE_CHECKING:  # imported in the tests: without python-pkcs11 they skip instead of failing to load
    from datasources.store.hsm import Pkcs11KeyEncryptionKey

REQUIRE = os.environ.get("TEST_REQUIRE_SERVICES") == "1"
MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
PIN = "20261123"
SO_PIN = "87654321"


def _unavailable(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"{reason}; TEST_REQUIRE_SERVICES=1 needs it (apt-get install softhsm2)")
    pytest.skip(f"{reason} (apt-get install softhsm2 to run the HSM tests)")


@dataclass(frozen=True)
class SoftHsm:
    util: str
    module: str
    conf: Path

    def init_token(self, label: str) -> None:
        subprocess.run(  # noqa: S603 - the softhsm2-util found on PATH, our own arguments
            [self.util, "--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", SO_PIN],
            check=True,
            capture_output=True,
            env={**os.environ, "SOFTHSM2_CONF": str(self.conf)},
        )


@pytest.fixture(scope="module")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    """SoftHSM2 with its own token directory and two tokens (``bff`` and ``cli``). The module is
    loaded after the tokens exist (SoftHSM reads its tokens when the module is initialised)."""
    util = shutil.which("softhsm2-util")
    if util is None:
        _unavailable("softhsm2-util is not installed")
        return
    module = os.environ.get("SOFTHSM2_MODULE") or next((m for m in MODULES if Path(m).is_file()), None)
    if module is None:
        _unavailable(f"softhsm2-util is installed but libsofthsm2.so is in none of {', '.join(MODULES)}")
        return
    try:
        from datasources.store import hsm
    except ImportError as exc:  # python-pkcs11 is in the dev extra
        _unavailable(f"python-pkcs11 is not installed: {exc}")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    hsm.release()
    softhsm = SoftHsm(util, module, conf)
    for label in ("bff", "cli"):
        softhsm.init_token(label)
    created = hsm.create_key(module, "bff", PIN, "master")
    assert created == ["master"]
    yield softhsm
    hsm.release()
    if previous is None:
        del os.environ["SOFTHSM2_CONF"]
    else:
        os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture
def kek(softhsm: SoftHsm) -> Pkcs11KeyEncryptionKey:
    from datasources.store.hsm import Pkcs11KeyEncryptionKey

    return Pkcs11KeyEncryptionKey(softhsm.module, "bff", PIN, "master")


def test_the_key_is_created_once_and_never_leaves_the_token(softhsm: SoftHsm) -> None:
    import pkcs11
    from pkcs11 import Attribute, KeyType, ObjectClass

    from datasources.store import hsm

    assert hsm.create_key(softhsm.module, "bff", PIN, "master") == []
    session = hsm._session(softhsm.module, "bff", PIN)
    key = session.get_key(object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES, label="master")
    assert key.key_length == 256
    assert key[Attribute.TOKEN] and key[Attribute.PRIVATE] and key[Attribute.SENSITIVE]
    assert not key[Attribute.EXTRACTABLE]
    with pytest.raises(pkcs11.exceptions.AttributeSensitive):
        key[Attribute.VALUE]


def test_wrap_unwrap_round_trip(kek: Pkcs11KeyEncryptionKey) -> None:
    from datasources.store.hsm import GCM, kek_id_for

    assert kek.scheme == GCM  # SoftHSM offers CKM_AES_GCM
    assert kek.kek_id == kek_id_for("bff", "master")
    material = os.urandom(32)
    wrapped = kek.wrap("field-1", material)
    prefix, kek_id, payload = wrapped.split(":", 2)
    assert (prefix, kek_id) == ("hsm1", kek.kek_id)
    assert len(base64.b64decode(payload)) == 12 + 32 + 16  # IV, ciphertext, tag
    assert material not in base64.b64decode(payload)
    assert kek.unwrap("field-1", wrapped) == material
    assert kek.wrap("field-1", material) != wrapped  # a fresh IV each time
    assert PIN not in repr(kek)


def test_a_wrapped_key_under_another_kid_is_refused(kek: Pkcs11KeyEncryptionKey) -> None:
    wrapped = kek.wrap("field-1", os.urandom(32))
    with pytest.raises(CryptoError, match="field-2 does not open"):
        kek.unwrap("field-2", wrapped)


def test_tampered_or_foreign_wrapped_keys_are_refused(kek: Pkcs11KeyEncryptionKey) -> None:
    wrapped = kek.wrap("field-1", os.urandom(32))
    prefix, kek_id, payload = wrapped.split(":", 2)
    raw = bytearray(base64.b64decode(payload))
    for index in (0, 20, len(raw) - 1):  # the IV, the ciphertext, the tag
        flipped = bytearray(raw)
        flipped[index] ^= 0x01
        with pytest.raises(CryptoError, match="does not open"):
            kek.unwrap("field-1", f"{prefix}:{kek_id}:{base64.b64encode(bytes(flipped)).decode()}")
    with pytest.raises(CryptoError, match="damaged"):
        kek.unwrap("field-1", f"{prefix}:{kek_id}:{base64.b64encode(bytes(raw[:20])).decode()}")
    with pytest.raises(CryptoError, match="not by the HSM key configured"):
        kek.unwrap("field-1", f"{prefix}:000000000000:{payload}")
    with pytest.raises(CryptoError, match="rewrap"):
        kek.unwrap("field-1", MasterKey(b"k" * 32).wrap("field-1", os.urandom(32)))
    assert kek.unwrap("field-1", wrapped)  # the good value still opens: the session survived the failures


def test_another_key_in_the_token_does_not_open_it(softhsm: SoftHsm, kek: Pkcs11KeyEncryptionKey) -> None:
    from datasources.store.hsm import Pkcs11KeyEncryptionKey, create_key

    create_key(softhsm.module, "bff", PIN, "other")
    other = Pkcs11KeyEncryptionKey(softhsm.module, "bff", PIN, "other")
    assert other.kek_id != kek.kek_id
    wrapped = kek.wrap("field-1", os.urandom(32))
    with pytest.raises(CryptoError, match="not by the HSM key configured"):
        other.unwrap("field-1", wrapped)
    # Even under the right id, the other key's GCM tag does not verify.
    forged = wrapped.replace(kek.kek_id, other.kek_id)
    with pytest.raises(CryptoError, match="does not open"):
        other.unwrap("field-1", forged)


def test_wrong_pin_token_or_label_fail_at_start(softhsm: SoftHsm) -> None:
    from datasources.store import hsm

    with pytest.raises(CryptoError, match="no AES key labelled 'missing'"):
        hsm.Pkcs11KeyEncryptionKey(softhsm.module, "bff", PIN, "missing")
    with pytest.raises(CryptoError, match="no PKCS#11 token labelled 'nope'"):
        hsm.Pkcs11KeyEncryptionKey(softhsm.module, "nope", PIN, "master")
    # The "cli" token has no session of this process yet: its login is tried, and refused.
    with pytest.raises(CryptoError, match="refuses MASTER_KEY_PKCS11_PIN") as refused:
        hsm.Pkcs11KeyEncryptionKey(softhsm.module, "cli", "00000000", "master")
    assert "00000000" not in str(refused.value)


def test_encrypt_then_mac_fallback(softhsm: SoftHsm) -> None:
    """For tokens without CKM_AES_GCM: AES-CBC-PAD and an HMAC-SHA256 key, both in the token."""
    from datasources.store.hsm import ETM, Pkcs11KeyEncryptionKey, create_key

    assert create_key(softhsm.module, "bff", PIN, "etm") == ["etm"]  # GCM is offered: no HMAC key is made
    with pytest.raises(CryptoError, match=r"no HMAC key 'etm\.mac'"):
        Pkcs11KeyEncryptionKey(softhsm.module, "bff", PIN, "etm", scheme=ETM)
    assert create_key(softhsm.module, "bff", PIN, "etm", scheme=ETM) == ["etm.mac"]
    kek = Pkcs11KeyEncryptionKey(softhsm.module, "bff", PIN, "etm", scheme=ETM)
    material = os.urandom(48)
    wrapped = kek.wrap("audit-1", material)
    prefix, kek_id, payload = wrapped.split(":", 2)
    assert (prefix, kek_id) == ("hsm1-etm", kek.kek_id)
    assert kek.unwrap("audit-1", wrapped) == material
    with pytest.raises(CryptoError, match="does not open"):
        kek.unwrap("audit-2", wrapped)
    raw = bytearray(base64.b64decode(payload))
    for index in (0, 20, len(raw) - 1):  # the IV, the ciphertext, the MAC
        flipped = bytearray(raw)
        flipped[index] ^= 0x80
        with pytest.raises(CryptoError, match="does not open"):
            kek.unwrap("audit-1", f"{prefix}:{kek_id}:{base64.b64encode(bytes(flipped)).decode()}")
    # The same key reads both formats, whichever it writes.
    gcm = Pkcs11KeyEncryptionKey(softhsm.module, "bff", PIN, "etm")
    assert gcm.unwrap("audit-1", wrapped) == material


def test_a_lost_session_is_opened_again(kek: Pkcs11KeyEncryptionKey) -> None:
    from datasources.store import hsm

    wrapped = kek.wrap("field-1", b"m" * 32)
    hsm._session(kek.module, kek.token_label, PIN).close()  # as an HSM restart would: handle gone, logged out
    assert kek.unwrap("field-1", wrapped) == b"m" * 32


async def test_a_keyring_on_the_hsm_stores_and_reloads_its_keys(
    softhsm: SoftHsm, kek: Pkcs11KeyEncryptionKey, db: Database, clock: FixedClock
) -> None:
    from datasources.store.hsm import Pkcs11KeyEncryptionKey

    keyring = Keyring(db, kek, clock)
    await set_up(keyring, None, field_algorithm="SM4GCM", audit_algorithm="SM4GCM")
    await keyring.rotate(FIELD, "A256GCM")
    assert {k.kid for k in keyring.keys()} == {"field-1", "field-2", "blind-index-1", "audit-1"}
    async with db.reading() as session:
        rows = (await session.execute(select(ManagedKey))).scalars().all()
    assert rows and all(row.wrapped.startswith(f"hsm1:{kek.kek_id}:") for row in rows)

    again = Keyring(db, Pkcs11KeyEncryptionKey(softhsm.module, "bff", PIN, "master"), clock)
    await again.refresh()
    assert {k.kid: k.material for k in again.keys()} == {k.kid: k.material for k in keyring.keys()}
    assert again.active(FIELD).kid == "field-2"
    with pytest.raises(CryptoError, match="not by the one configured"):
        await Keyring(db, MasterKey(b"k" * 32), clock).refresh()


async def test_open_keyring_uses_the_hsm_when_configured(
    softhsm: SoftHsm, database: DatabaseTarget, db: Database, tmp_path: Path, clock: FixedClock
) -> None:
    settings = make_settings(
        database,
        tmp_path,
        master_key=None,
        master_key_pkcs11_module=softhsm.module,
        master_key_pkcs11_token="bff",
        master_key_pkcs11_pin=PIN,
        master_key_pkcs11_key_label="master",
    )
    keyring = await open_keyring(settings, db, clock)
    assert keyring.active(FIELD).kid == "field-1"  # nothing derived from a master key to take over
    assert keyring.active(BLIND_INDEX).kid == "blind-index-1"
    assert keyring.kek.wrap("x", b"y" * 32).startswith("hsm1:")
    assert not (tmp_path / "master.key").exists()
    assert PIN not in repr(settings)


async def test_rewrap_moves_every_key_from_the_file_master_key_to_the_hsm(
    softhsm: SoftHsm, kek: Pkcs11KeyEncryptionKey, database: DatabaseTarget, db: Database, tmp_path: Path, clock: FixedClock
) -> None:
    from datasources.store.hsm import rewrap

    file_settings = make_settings(database, tmp_path)
    before = await open_keyring(file_settings, db, clock)  # legacy k1 / bi1 taken over from the master key
    await before.rotate(FIELD)
    await before.rotate(AUDIT)
    await before.retire("audit-1", still_used=0)
    materials = {k.kid: k.material for k in before.keys()}
    assert {"k1", "bi1", "field-2"} <= set(materials)

    master = MasterKey(base64.b64decode(TEST_MASTER_KEY))
    report = await rewrap(db, master, kek)
    assert sorted(report.rewrapped) == sorted(materials)
    assert (report.already, report.retired) == ([], 1)
    async with db.reading() as session:
        rows = {row.kid: row for row in (await session.execute(select(ManagedKey))).scalars().all()}
    assert rows["audit-1"].wrapped == ""
    assert all(rows[kid].wrapped.startswith(f"hsm1:{kek.kek_id}:") for kid in materials)

    hsm_settings = file_settings.model_copy(
        update={
            "master_key_pkcs11_module": softhsm.module,
            "master_key_pkcs11_token": "bff",
            "master_key_pkcs11_pin": SecretStr(PIN),
            "master_key_pkcs11_key_label": "master",
        }
    )
    after = await open_keyring(hsm_settings, db, clock)
    assert {k.kid: k.material for k in after.keys()} == materials
    assert after.active(FIELD).kid == "field-2" and after.active(AUDIT).kid == "audit-2"
    with pytest.raises(CryptoError):
        await Keyring(db, master, clock).refresh()  # the file master key opens nothing any more

    again = await rewrap(db, master, kek)  # already done: nothing to do, nothing unwrapped
    assert (again.rewrapped, sorted(again.already)) == ([], sorted(materials))

    back = await rewrap(db, kek, master)  # and back again
    assert sorted(back.rewrapped) == sorted(materials)
    reloaded = Keyring(db, master, clock)
    await reloaded.refresh()
    assert {k.kid: k.material for k in reloaded.keys()} == materials


async def test_rewrap_changes_nothing_when_one_key_does_not_open(
    kek: Pkcs11KeyEncryptionKey, database: DatabaseTarget, db: Database, tmp_path: Path, clock: FixedClock
) -> None:
    from datasources.store.hsm import rewrap

    await open_keyring(make_settings(database, tmp_path), db, clock)
    stranger = Keyring(db, MasterKey(b"x" * 32), clock)
    async with db.writing() as session:
        session.add(stranger._row(AUDIT, None, 9, None, "audit-9", None))
    async with db.reading() as session:
        before = {row.kid: row.wrapped for row in (await session.execute(select(ManagedKey))).scalars().all()}

    with pytest.raises(CryptoError, match="audit-9"):
        await rewrap(db, MasterKey(base64.b64decode(TEST_MASTER_KEY)), kek)
    async with db.reading() as session:
        after = {row.kid: row.wrapped for row in (await session.execute(select(ManagedKey))).scalars().all()}
    assert after == before
    assert all(wrapped.startswith("mk1:") for wrapped in after.values())


async def _file_keyed_database(url: str, data_dir: Path) -> None:
    """A database whose keys the file master key wraps, as a deployment from before the HSM has."""
    db = Database(url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        target = DatabaseTarget("sqlite", url, None)
        await open_keyring(make_settings(target, data_dir), db, FixedClock(MONDAY_0910))
    finally:
        await db.dispose()


def test_command_line_hsm_init_and_rewrap(softhsm: SoftHsm, tmp_path: Path) -> None:
    """`python -m bff.keys hsm-init`, `rewrap` and `list` as an operator runs them, on the "cli" token
    (which this process never opened: SoftHSM reads tokens when loaded, so the commands run apart)."""
    from datasources.store.hsm import kek_id_for

    url = f"sqlite+aiosqlite:///{tmp_path / 'bff.db'}"
    asyncio.run(_file_keyed_database(url, tmp_path))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MASTER_KEY", "DATABASE_"))},
        "SOFTHSM2_CONF": str(softhsm.conf),
        "BFF_CONFIG": str(tmp_path / "none.toml"),
        "DATABASE_URL": url,
        "DATA_DIR": str(tmp_path),
        "MASTER_KEY": TEST_MASTER_KEY,
        "MASTER_KEY_PKCS11_MODULE": softhsm.module,
        "MASTER_KEY_PKCS11_TOKEN": "cli",
        "MASTER_KEY_PKCS11_PIN": PIN,
        "MASTER_KEY_PKCS11_KEY_LABEL": "bff-master",
    }

    def run(*args: str, hsm: bool = True) -> str:
        command_env = env if hsm else {k: v for k, v in env.items() if not k.startswith("MASTER_KEY_PKCS11")}
        done = subprocess.run(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "bff.keys", *args], env=command_env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert PIN not in done.stdout + done.stderr
        return done.stdout

    kek_id = kek_id_for("cli", "bff-master")
    assert f"key 'bff-master' created bff-master; kek id {kek_id}" in run("hsm-init")
    assert "already there" in run("hsm-init")
    assert "k1 " in run("list", hsm=False)
    with pytest.raises(AssertionError, match="rewrap"):
        run("list")  # the HSM opens none of the file master key's rows until they are moved
    assert f"3 managed keys rewrapped, 0 were already wrapped by {kek_id}" in run("rewrap")
    listed = run("list")  # the server's path: every key opens with the HSM
    assert all(kid in listed for kid in ("k1 ", "bi1 ", "audit-1 ")), listed
    assert "0 managed keys rewrapped, 3 were already" in run("rewrap")
    assert "3 managed keys rewrapped" in run("rewrap", "--to-file")
    assert "k1 " in run("list", hsm=False)
