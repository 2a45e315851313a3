"""The staff second factor: TOTP (RFC 6238) as authenticator apps expect it: SHA-1, 6 digits, 30 s.

The secret is sealed like personal data (``FieldCipher``, context ``staff.totp_secret``) and only
leaves the BFF once, in the enrollment answer. A code is accepted once: the time step it belongs to
is stored, and a code of that step or an earlier one is refused, so a code seen over a shoulder or
replayed from a log cannot open a second session. One step of clock drift either way is allowed.
"""

from __future__ import annotations

import base64
import hmac
import os
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasources.clock import Clock
from datasources.store.db import Database
from datasources.store.fieldcrypt import FieldCipher
from datasources.store.models import StaffCredential
from resolvers.errors import NotAllowed, NotAuthenticated, SecondFactorRejected, SecondFactorRequired

STEP_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1
SECRET_BYTES = 20  # 160 bits, the length RFC 4226 recommends for HMAC-SHA-1
CONTEXT = "staff.totp_secret"
WRONG_CODE = "The code is wrong or has expired; enter the current code from your authenticator app."


@dataclass(frozen=True, slots=True)
class Enrollment:
    """What the authenticator app needs: the otpauth:// URI (as a QR code) or the secret typed in."""

    uri: str
    secret: str  # base32, no padding
    issuer: str
    account_name: str


def _totp(secret: bytes) -> TOTP:
    return TOTP(secret, DIGITS, SHA1(), STEP_SECONDS)  # noqa: S303 - SHA-1 is what authenticator apps use


def _secret(cipher: FieldCipher, credential: StaffCredential) -> bytes:
    assert credential.totp_secret_enc is not None
    encoded = cipher.decrypt(credential.totp_secret_enc, context=CONTEXT)
    return base64.b32decode(encoded + "=" * (-len(encoded) % 8))


def step_at(now: datetime) -> int:
    return int(now.timestamp()) // STEP_SECONDS


def matching_step(secret: bytes, code: str, now: datetime) -> int | None:
    """The time step (now, or one either side) whose code ``code`` is; None when it is none of them."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    totp, current = _totp(secret), step_at(now)
    for step in (current, current - DRIFT_STEPS, current + DRIFT_STEPS):
        if hmac.compare_digest(totp.generate(step * STEP_SECONDS), code.encode()):
            return step
    return None


def login_step(cipher: FieldCipher, credential: StaffCredential, code: str | None, now: datetime) -> int:
    """The step of a login's code, for an account with a confirmed factor. A missing code is asked
    for (``SecondFactorRequired``, not a failure); a wrong one raises ``SecondFactorRejected``.
    Reuse is decided where the step is stored (``consume``), atomically."""
    if not code or not code.strip():
        raise SecondFactorRequired("Enter the 6-digit code from your authenticator app.")
    step = matching_step(_secret(cipher, credential), code, now)
    if step is None:
        raise SecondFactorRejected(WRONG_CODE)
    return step


async def consume(s: AsyncSession, account_id: int, step: int, **values: object) -> bool:
    """Records ``step`` as used (with ``values``) unless it or a later one was used: False then."""
    stored = await s.execute(
        update(StaffCredential)
        .where(
            col(StaffCredential.account_id) == account_id,
            or_(col(StaffCredential.totp_last_step).is_(None), col(StaffCredential.totp_last_step) < step),
        )
        .values(totp_last_step=step, **values)
    )
    return bool(stored.rowcount)  # type: ignore[attr-defined]


async def begin_enrollment(db: Database, cipher: FieldCipher, *, account_id: int, issuer: str) -> Enrollment:
    """A new secret, stored sealed and unconfirmed; a confirmed factor is never replaced from a session
    (whoever holds a stolen session must not be able to swap in their own phone): an administrator
    resets it (``python -m bff.staff totp-reset``)."""
    secret = os.urandom(SECRET_BYTES)
    encoded = base64.b32encode(secret).decode().rstrip("=")
    async with db.writing() as s:
        credential = await s.get(StaffCredential, account_id)
        if credential is None:
            raise NotAuthenticated("Only staff accounts with a password can add a second factor.")
        if credential.totp_confirmed_at is not None:
            raise NotAllowed(
                "A second factor is already active; an administrator must reset it before a new one is added.",
                "ALREADY_ENROLLED",
            )
        credential.totp_secret_enc = cipher.encrypt(encoded, context=CONTEXT)
        credential.totp_last_step = None
        username = credential.username
    return Enrollment(
        uri=_totp(secret).get_provisioning_uri(username, issuer), secret=encoded, issuer=issuer, account_name=username
    )


async def confirm(db: Database, cipher: FieldCipher, clock: Clock, *, account_id: int, code: str) -> datetime:
    """The first valid code proves the app holds the secret; from then on every login needs a code."""
    now = clock.now()
    async with db.reading() as s:
        credential = await s.get(StaffCredential, account_id)
    if credential is None or credential.totp_secret_enc is None:
        raise NotAllowed("Start the enrollment first (beginSecondFactorEnrollment).", "NOT_ENROLLING")
    if credential.totp_confirmed_at is not None:
        raise NotAllowed("The second factor is already active.", "ALREADY_ENROLLED")
    step = matching_step(_secret(cipher, credential), code, now)
    if step is None:
        raise SecondFactorRejected(WRONG_CODE)
    async with db.writing() as s:
        if not await consume(s, account_id, step, totp_confirmed_at=now):
            raise SecondFactorRejected(WRONG_CODE)
    return now


async def reset(db: Database, *, username: str) -> bool:
    """Removes a staff member's factor (lost phone); they enroll again. False: no such username."""
    async with db.writing() as s:
        cleared = await s.execute(
            update(StaffCredential)
            .where(col(StaffCredential.username) == username)
            .values(totp_secret_enc=None, totp_confirmed_at=None, totp_last_step=None)
        )
        return bool(cleared.rowcount)  # type: ignore[attr-defined]
