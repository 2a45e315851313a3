"""The face verification sandbox's captures: who was in front of the camera, once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from datasources.store.types import UTCDateTime


class FaceCapture(SQLModel, table=True):
    __tablename__ = "face_capture"
    token: str = Field(primary_key=True, max_length=64)
    # The SM3 digest of the captured person's ID number: the sandbox keeps no ID number in clear.
    person_digest: str = Field(max_length=64)
    live: bool = True
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
