"""Face verification sandbox: ``capture`` plays the terminal's camera (a person stands in front of it),
``verify`` answers as the service does: a match only for the same person, live, once, within two
minutes."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import col

from datasources.clock import Clock
from datasources.crypto.primitives import digest
from datasources.errors import SourceRejected
from datasources.face import contract as c
from datasources.face.tables import FaceCapture
from datasources.store.db import Database

TTL = timedelta(minutes=2)


def _person(id_no: str) -> str:
    return digest("SM3", id_no.strip().upper().encode()).hex()


class SandboxFaceVerification:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def capture(self, *, id_no: str, live: bool = True) -> str:
        """The person holding ``id_no`` stands in front of the camera (``live`` False: a photo of them)."""
        now = self.clock.now()
        token = secrets.token_hex(16)
        async with self.db.writing() as s:
            s.add(FaceCapture(token=token, person_digest=_person(id_no), live=live, created_at=now,
                              expires_at=now + TTL))
        return token

    async def verify(self, *, capture_token: str, name: str, id_no: str) -> c.FaceMatch:
        now = self.clock.now()
        async with self.db.writing() as s:
            row = await s.get(FaceCapture, capture_token)
            if row is None:
                raise SourceRejected(c.SOURCE, c.CAPTURE_UNKNOWN, "no such capture")
            if row.expires_at <= now:
                raise SourceRejected(c.SOURCE, c.CAPTURE_EXPIRED, "the capture is older than two minutes")
            used = await s.execute(
                update(FaceCapture)
                .where(col(FaceCapture.token) == capture_token, col(FaceCapture.used_at).is_(None))
                .values(used_at=now)
            )
            if not used.rowcount:  # type: ignore[attr-defined]
                raise SourceRejected(c.SOURCE, c.CAPTURE_USED, "the capture was already verified")
            same = row.person_digest == _person(id_no)
        matched = same and row.live
        return c.FaceMatch(matched=matched, score=97.5 if matched else (41.0 if same else 12.0))


if __debug__:
    def _conforms(db: Database, clock: Clock) -> c.FaceVerification:
        return SandboxFaceVerification(db, clock)
