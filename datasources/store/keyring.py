"""Managed keys: generated here, stored only wrapped by the master key, versioned, rotated, retired.

A purpose (field encryption, the blind index, the audit log, transport key wrapping, the app CA,
response signing) has one ACTIVE key that serves new writes; older versions stay DECRYPT_ONLY so
what they sealed stays readable until the re-encryption job has moved it, and are then RETIRED:
their material is erased from the table. Raw key material exists only in this process's memory
(never in logs: ``Key`` hides it from ``repr``) and, wrapped, in ``managed_key``.

The master key (key-encryption key) sits behind ``KeyEncryptionKey``: a file or an environment
variable here; an HSM through PKCS#11 is another implementation of the same two methods
(``datasources.store.hsm``).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from datasources.clock import Clock
from datasources.crypto import primitives
from datasources.crypto.primitives import CryptoError, Sealer
from datasources.store.db import Database
from datasources.store.models import ManagedKey

ACTIVE = "ACTIVE"
DECRYPT_ONLY = "DECRYPT_ONLY"
RETIRED = "RETIRED"

FIELD = "FIELD"
BLIND_INDEX = "BLIND_INDEX"
AUDIT = "AUDIT"
TRANSPORT = "TRANSPORT"
# The app CA: one root per signature algorithm (an SM2 root certifies SM2 keys, an RSA root RSA keys).
CA_SM2 = "CA_SM2"
CA_RSA = "CA_RSA"
RESPONSE_SIGNING = "RESPONSE_SIGNING"
# The hospital's electronic seal (电子签章) on settlement statements: SM2, certified by the SM2 root.
E_SEAL = "E_SEAL"
PURPOSES = (FIELD, BLIND_INDEX, AUDIT, TRANSPORT, CA_SM2, CA_RSA, RESPONSE_SIGNING, E_SEAL)

# What each purpose may use; the first is the default.
ALGORITHMS: dict[str, tuple[str, ...]] = {
    FIELD: ("A256GCM", "SM4GCM"),
    BLIND_INDEX: ("HMAC-SHA256",),
    AUDIT: ("SM4GCM", "A256GCM"),
    TRANSPORT: ("RSA-OAEP-2048", "RSA-OAEP-4096"),
    CA_SM2: ("SM2-SM3",),
    CA_RSA: ("RSA-SHA256",),
    RESPONSE_SIGNING: ("SM2-SM3", "RSA-SHA256"),
    E_SEAL: ("SM2-SM3",),
}
# Rotating these changes what existing data is found by or verified with: only on purpose.
NOT_ROTATABLE = {
    BLIND_INDEX: "the blind index key is the lookup key of every stored index; rotating it needs a re-index",
}


def _hkdf(master: bytes, info: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode()).derive(master)


class KeyEncryptionKey(Protocol):
    """Wraps key material for storage. ``kid`` is bound to the wrapping: a row copied under another
    key id does not unwrap."""

    kek_id: str

    def wrap(self, kid: str, material: bytes) -> str: ...

    def unwrap(self, kid: str, wrapped: str) -> bytes: ...


class MasterKey:
    """The master key from MASTER_KEY or data_dir/master.key, used only to (un)wrap managed keys."""

    def __init__(self, master: bytes) -> None:
        if len(master) < 32:
            raise CryptoError("the master key must be at least 32 bytes (MASTER_KEY is base64 of 32 random bytes)")
        self._master = master
        self._sealer = Sealer("A256GCM", _hkdf(master, "key-wrapping"))
        self.kek_id = hashlib.sha256(_hkdf(master, "kek-id")).hexdigest()[:12]

    def wrap(self, kid: str, material: bytes) -> str:
        sealed = self._sealer.seal(material, f"managed-key:{kid}".encode())
        return f"mk1:{self.kek_id}:{base64.b64encode(sealed).decode()}"

    def unwrap(self, kid: str, wrapped: str) -> bytes:
        prefix, kek_id, payload = wrapped.split(":", 2)
        if prefix != "mk1" or kek_id != self.kek_id:
            raise CryptoError(
                f"managed key {kid} was wrapped by master key {kek_id}, not by the one configured ({self.kek_id}): "
                "set MASTER_KEY to the master key this database was created with"
            )
        return self._sealer.open(base64.b64decode(payload), f"managed-key:{kid}".encode())

    def legacy_key(self, info: str) -> bytes:
        """The keys the BFF derived from the master key before keys were managed (kid ``k1``)."""
        return _hkdf(self._master, info)


@dataclass(frozen=True, slots=True)
class Key:
    kid: str
    purpose: str
    algorithm: str
    version: int
    state: str
    material: bytes = field(repr=False)
    created_at: datetime
    expires_at: datetime | None = None
    public_pem: str | None = None
    certificate_pem: str | None = None


def new_material(algorithm: str) -> tuple[bytes, str | None]:
    """Fresh key material for ``algorithm`` and, for key pairs, the public key's PEM."""
    if algorithm in ("A256GCM", "SM4GCM"):
        return primitives.new_data_key(algorithm), None  # type: ignore[arg-type]
    if algorithm == "HMAC-SHA256":
        return primitives.new_data_key("A256GCM"), None
    if algorithm.startswith("RSA-OAEP-"):
        key = primitives.generate_signing_key("RSA-SHA256", rsa_bits=int(algorithm.rsplit("-", 1)[1]))
        return primitives.private_key_pem(key), primitives.public_key_pem(key).decode()
    if algorithm in primitives.SIGNATURE_ALGORITHMS:
        key = primitives.generate_signing_key(algorithm)  # type: ignore[arg-type]
        return primitives.private_key_pem(key), primitives.public_key_pem(key).decode()
    raise CryptoError(f"no key material for algorithm {algorithm!r}")


class Keyring:
    """The managed keys of this deployment, unwrapped in memory; every process loads the same set.

    Reads are synchronous (a cipher call never waits); changes go to the database first and are
    then loaded here. Other processes load them on ``refresh`` (the app refreshes on a broadcast
    after a rotation, and periodically).
    """

    def __init__(self, db: Database, kek: KeyEncryptionKey, clock: Clock) -> None:
        self.db = db
        self.kek = kek
        self.clock = clock
        self._by_kid: dict[str, Key] = {}
        self._active: dict[str, Key] = {}
        # Keys made when this keyring was opened because the algorithm setting had changed.
        self.switched_by_settings: list[str] = []

    async def refresh(self) -> None:
        async with self.db.reading() as session:
            rows = (await session.execute(select(ManagedKey).where(col(ManagedKey.state) != RETIRED))).scalars().all()
        by_kid = {row.kid: self._unwrapped(row) for row in rows}
        self._by_kid = by_kid
        self._active = {key.purpose: key for key in by_kid.values() if key.state == ACTIVE}

    def _unwrapped(self, row: ManagedKey) -> Key:
        return Key(
            kid=row.kid,
            purpose=row.purpose,
            algorithm=row.algorithm,
            version=row.version,
            state=row.state,
            material=self.kek.unwrap(row.kid, row.wrapped),
            created_at=row.created_at,
            expires_at=row.expires_at,
            public_pem=row.public_pem,
            certificate_pem=row.certificate_pem,
        )

    def active(self, purpose: str) -> Key:
        try:
            return self._active[purpose]
        except KeyError:
            raise CryptoError(f"no active {purpose} key: the keyring was not set up (bff.keys ensure)") from None

    def has_active(self, purpose: str) -> bool:
        return purpose in self._active

    def get(self, kid: str) -> Key:
        try:
            return self._by_kid[kid]
        except KeyError:
            raise CryptoError(f"key {kid} is unknown or retired: the value it sealed cannot be opened") from None

    def keys(self) -> list[Key]:
        return sorted(self._by_kid.values(), key=lambda k: (k.purpose, k.version))

    async def ensure(
        self,
        purpose: str,
        algorithm: str | None = None,
        *,
        material: bytes | None = None,
        kid: str | None = None,
        expires_at: datetime | None = None,
    ) -> Key:
        """The active key of ``purpose``, created (version 1) when there is none. Safe to race: two
        processes starting together create one key."""
        if not self._active:
            await self.refresh()
        if purpose in self._active:
            return self._active[purpose]
        return await self._add(purpose, algorithm, version=1, material=material, kid=kid, expires_at=expires_at)

    async def rotate(self, purpose: str, algorithm: str | None = None, *, expires_at: datetime | None = None) -> Key:
        """A new version becomes ACTIVE for new writes; the previous one stays readable (DECRYPT_ONLY)."""
        if purpose in NOT_ROTATABLE:
            raise CryptoError(f"{purpose} is not rotated here: {NOT_ROTATABLE[purpose]}")
        await self.refresh()
        current = self._active.get(purpose)
        version = (max((k.version for k in self._by_kid.values() if k.purpose == purpose), default=0)) + 1
        try:
            async with self.db.writing() as session:
                if current is not None:
                    row = await session.get(ManagedKey, current.kid)
                    if row is not None and row.state == ACTIVE:
                        row.state = DECRYPT_ONLY
                algorithm = algorithm or (current.algorithm if current else None)
                session.add(self._row(purpose, algorithm, version, None, None, expires_at))
        except IntegrityError:
            pass  # another process rotated at the same moment (two starting with a new setting): theirs holds
        await self.refresh()
        return self._active[purpose]

    async def retire(self, kid: str, *, still_used: int) -> None:
        """Erases a DECRYPT_ONLY key's material. ``still_used`` is how many stored values it still
        seals (the re-encryption job counts them): a key that opens anything is never retired."""
        key = self.get(kid)
        if key.state == ACTIVE:
            raise CryptoError(f"{kid} is the active {key.purpose} key: rotate first, then re-encrypt, then retire")
        if still_used:
            raise CryptoError(f"{kid} still seals {still_used} stored values: run the re-encryption job first")
        async with self.db.writing() as session:
            row = await session.get(ManagedKey, kid)
            if row is not None:
                row.state = RETIRED
                row.wrapped = ""
                row.retired_at = self.clock.now()
        await self.refresh()

    async def set_certificate(self, kid: str, certificate_pem: str, *, expires_at: datetime | None) -> None:
        async with self.db.writing() as session:
            row = await session.get(ManagedKey, kid)
            if row is None:
                raise CryptoError(f"key {kid} is unknown")
            row.certificate_pem = certificate_pem
            row.expires_at = expires_at
        await self.refresh()

    async def _add(
        self,
        purpose: str,
        algorithm: str | None,
        *,
        version: int,
        material: bytes | None,
        kid: str | None,
        expires_at: datetime | None,
    ) -> Key:
        try:
            async with self.db.writing() as session:
                session.add(self._row(purpose, algorithm, version, material, kid, expires_at))
        except IntegrityError:
            pass  # another process created it first: load theirs
        await self.refresh()
        return self.active(purpose)

    def _row(
        self,
        purpose: str,
        algorithm: str | None,
        version: int,
        material: bytes | None,
        kid: str | None,
        expires_at: datetime | None,
    ) -> ManagedKey:
        if purpose not in ALGORITHMS:
            raise CryptoError(f"unknown key purpose {purpose!r}; one of {', '.join(PURPOSES)}")
        algorithm = algorithm or ALGORITHMS[purpose][0]
        if algorithm not in ALGORITHMS[purpose]:
            raise CryptoError(f"{purpose} keys use {' or '.join(ALGORITHMS[purpose])}, not {algorithm}")
        public_pem = None
        if material is None:
            material, public_pem = new_material(algorithm)
        kid = kid or f"{purpose.lower().replace('_', '-')}-{version}"
        return ManagedKey(
            kid=kid,
            purpose=purpose,
            algorithm=algorithm,
            version=version,
            state=ACTIVE,
            wrapped=self.kek.wrap(kid, material),
            public_pem=public_pem,
            created_at=self.clock.now(),
            expires_at=expires_at,
        )


async def set_up(
    keyring: Keyring, master: MasterKey | None, *, field_algorithm: str, audit_algorithm: str
) -> list[Key]:
    """The keys every deployment needs. A database that predates managed keys keeps reading its
    data: the field and index keys it derived from the file master key are taken over as version 1.
    With a KEK that derives nothing (an HSM: ``master`` None) there is nothing to take over; a
    database started with a file master key is moved to it by ``bff.keys rewrap``."""
    if master is not None:
        await keyring.ensure(FIELD, "A256GCM", material=master.legacy_key("field-encryption:k1"), kid="k1")
        await keyring.ensure(BLIND_INDEX, material=master.legacy_key("blind-index"), kid="bi1")
    else:
        await keyring.ensure(FIELD, field_algorithm)
        await keyring.ensure(BLIND_INDEX)
    await keyring.ensure(AUDIT, audit_algorithm)
    # Switching the algorithm in settings applies to new writes at once: a new key version with it.
    # Returns the keys that switch made (the caller records them).
    switched = []
    for purpose, algorithm in ((FIELD, field_algorithm), (AUDIT, audit_algorithm)):
        if keyring.active(purpose).algorithm != algorithm:
            key = await keyring.rotate(purpose, algorithm)
            if key.algorithm == algorithm:
                switched.append(key)
    return switched
