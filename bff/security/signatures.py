"""Signed requests: every call to the gateway proves which registered app made it, and when.

The canonical string and headers are defined once, in ``clients/signing.py``, which front-end
developers read and the tests use. Here the gateway checks, in this order, and refuses with a
code per cause: the headers are there (SIGNATURE_MISSING), the app is registered and enabled
(APP_UNKNOWN, APP_DISABLED), the header names the app's own algorithm
(SIGNATURE_ALGORITHM_MISMATCH), the certificate is the app's and usable now (CERT_UNKNOWN,
CERT_REVOKED, CERT_EXPIRED, CERT_NOT_YET_VALID), the timestamp is fresh (TIMESTAMP_STALE), the
body is the one that was digested (BODY_TAMPERED), the signature is the certificate key's
(SIGNATURE_INVALID), and only then that the nonce is new (NONCE_REUSED): a forged request
cannot burn a real client's nonce.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from bff.security.nonces import Nonces, NonceStoreFull
from clients import signing
from datasources.clock import Clock
from datasources.crypto import certificates, primitives
from datasources.crypto.primitives import CryptoError, PublicKey
from datasources.store.db import Database
from datasources.store.models import AppCertificate, AppIdentity
from resolvers.apps import Usage

log = logging.getLogger(__name__)


class SignatureRefused(Exception):
    def __init__(self, code: str, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class TrustedApp:
    app_id: str
    algorithm: str
    sign_responses: bool
    enabled: bool
    kind: str = "FRONT_END"  # FRONT_END, IN_HOUSE, PARTNER, DEVICE (a kiosk or bedside terminal acts as itself)
    name: str = ""


@dataclass(frozen=True, slots=True)
class TrustedCertificate:
    serial: str
    app_id: str
    public_key: PublicKey
    not_before: datetime
    not_after: datetime
    revoked: bool


@dataclass(frozen=True, slots=True)
class SignedCaller:
    app: TrustedApp
    serial: str
    nonce: str


class AppRegistry:
    """Apps and their certificates, in memory: a signature check reads no database. Reloaded on the
    broadcast that follows a change (revocation takes effect at once) and periodically."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._apps: dict[str, TrustedApp] = {}
        self._certs: dict[str, TrustedCertificate] = {}

    async def refresh(self) -> None:
        async with self.db.reading() as s:
            app_rows = (await s.execute(select(AppIdentity))).scalars().all()
            cert_rows = (await s.execute(select(AppCertificate))).scalars().all()
        known = {cert.serial: cert for cert in self._certs.values()}
        certs: dict[str, TrustedCertificate] = {}
        for row in cert_rows:
            previous = known.get(row.serial)
            public_key = previous.public_key if previous else _public_key(row)
            if public_key is None:
                continue
            certs[row.serial] = TrustedCertificate(
                serial=row.serial,
                app_id=row.app_id,
                public_key=public_key,
                not_before=row.not_before,
                not_after=row.not_after,
                revoked=row.revoked_at is not None,
            )
        self._certs = certs
        self._apps = {
            row.app_id: TrustedApp(
                row.app_id, row.signature_algorithm, row.sign_responses, row.disabled_at is None, row.kind, row.name
            )
            for row in app_rows
        }

    def app(self, app_id: str) -> TrustedApp | None:
        return self._apps.get(app_id)

    def certificate(self, serial: str) -> TrustedCertificate | None:
        return self._certs.get(serial.lower())

    def certificates(self) -> Iterable[TrustedCertificate]:
        return self._certs.values()


def _public_key(row: AppCertificate) -> PublicKey | None:
    try:
        return certificates.parse(row.certificate_pem).public_key
    except CryptoError:
        log.error("certificate %s of app %s in the database does not parse; it is ignored", row.serial, row.app_id)
        return None


@dataclass(frozen=True, slots=True)
class SignaturePolicy:
    max_skew_s: int = 300
    # development: unsigned requests pass (counted and logged); production: refused.
    required: bool = False


class Verifier:
    def __init__(self, registry: AppRegistry, nonces: Nonces, clock: Clock, policy: SignaturePolicy) -> None:
        self.registry = registry
        self.nonces = nonces
        self.clock = clock
        self.policy = policy
        self.usage = Usage()

    async def verify(
        self, headers: Mapping[str, str], *, method: str, path: str, query: str, body: bytes
    ) -> SignedCaller:
        missing = [name for name in signing.REQUEST_HEADERS if not headers.get(name)]
        if missing:
            raise SignatureRefused(
                "SIGNATURE_MISSING", f"Signed requests carry {', '.join(missing)}; see clients/signing.py."
            )
        app_id, serial = headers[signing.APP_ID], headers[signing.CERT_SERIAL]
        algorithm, nonce, stamp = headers[signing.SIGN_ALG], headers[signing.NONCE], headers[signing.TIMESTAMP]
        app = self.registry.app(app_id)
        if app is None:
            raise SignatureRefused("APP_UNKNOWN", f"No app {app_id} is registered with this gateway.")
        if not app.enabled:
            raise SignatureRefused("APP_DISABLED", f"App {app_id} is disabled; ask the hospital's IT team.")
        if algorithm != app.algorithm:
            raise SignatureRefused(
                "SIGNATURE_ALGORITHM_MISMATCH", f"App {app_id} signs with {app.algorithm}, not {algorithm}."
            )
        cert = self.registry.certificate(serial)
        if cert is None or cert.app_id != app_id:
            raise SignatureRefused("CERT_UNKNOWN", f"Certificate {serial} was not issued to {app_id} by this gateway.")
        now = self.clock.now()
        if cert.revoked:
            raise SignatureRefused("CERT_REVOKED", f"Certificate {serial} is revoked; use the app's current one.")
        if now > cert.not_after:
            raise SignatureRefused("CERT_EXPIRED", f"Certificate {serial} expired at {cert.not_after.isoformat()}.")
        if now < cert.not_before:
            raise SignatureRefused("CERT_NOT_YET_VALID", f"Certificate {serial} is valid from {cert.not_before}.")
        try:
            sent_ms = int(stamp)
        except ValueError:
            raise SignatureRefused("TIMESTAMP_STALE", "X-Timestamp is Unix time in milliseconds.") from None
        skew_s = abs(now.timestamp() - sent_ms / 1000)
        if skew_s > self.policy.max_skew_s:
            server = datetime.fromtimestamp(now.timestamp(), UTC).isoformat()
            raise SignatureRefused(
                "TIMESTAMP_STALE",
                f"The request was signed {skew_s:.0f} s away from the gateway's time ({server}); "
                f"at most {self.policy.max_skew_s} s is accepted. Check the caller's clock.",
            )
        if not 16 <= len(nonce) <= 64:
            raise SignatureRefused("SIGNATURE_MISSING", "X-Nonce is 16 to 64 random characters.")
        digest = headers[signing.CONTENT_DIGEST].lower()
        try:
            signature = base64.b64decode(headers[signing.SIGNATURE], validate=True)
        except (binascii.Error, ValueError):
            raise SignatureRefused("SIGNATURE_INVALID", "X-Signature is not base64.") from None
        message = signing.canonical_request(
            app_id=app_id,
            algorithm=algorithm,
            method=method,
            path=path,
            query=query,
            timestamp=stamp,
            nonce=nonce,
            digest=digest,
        )
        # The signature first: a forged request is refused before its body is hashed (a 2 MB body
        # costs milliseconds of SM3), and it never burns a real client's nonce.
        if not primitives.verify(cert.public_key, signature, message):
            raise SignatureRefused(
                "SIGNATURE_INVALID", f"The signature was not made by the key of certificate {serial} over this request."
            )
        if signing.content_digest(algorithm, body) != digest:
            raise SignatureRefused("BODY_TAMPERED", "The body does not match X-Content-Digest: it changed on the way.")
        # Remembered while its timestamp is still acceptable, no longer.
        ttl_s = max(1, math.ceil(sent_ms / 1000 + self.policy.max_skew_s - now.timestamp()))
        try:
            fresh = await self.nonces.claim(app_id, nonce, ttl_s)
        except NonceStoreFull:
            raise SignatureRefused(
                "GATEWAY_BUSY", "The gateway cannot take more signed requests this moment; retry shortly.", 503
            ) from None
        if not fresh:
            raise SignatureRefused("NONCE_REUSED", "This nonce was already used: a replay, or a client reusing nonces.")
        self.usage.record(cert.serial, now)
        return SignedCaller(app=app, serial=cert.serial, nonce=nonce)


_WANTED = {name.encode(): name for name in signing.REQUEST_HEADERS}


def header_map(scope_headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The signature headers of an ASGI scope (whose names uvicorn hands over lower-cased)."""
    wanted = _WANTED
    return {wanted[name]: value.decode("latin-1") for name, value in scope_headers if name in wanted}


def connection_init_headers(params: Mapping[str, Any] | None) -> dict[str, str]:
    """The signature fields of a ``connection_init`` payload (``signature: {app-id: …, …}``) as headers."""
    fields = (params or {}).get("signature")
    if not isinstance(fields, Mapping):
        return {}
    return {f"x-{name}": str(value) for name, value in fields.items() if isinstance(name, str)}


def refusal_body(refused: SignatureRefused) -> dict[str, Any]:
    return {"errors": [{"message": refused.message, "extensions": {"code": refused.code}}]}


def now_ms() -> int:
    return int(time.time() * 1000)
