"""The channel login sandbox's tables (prefixed ``channel_``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from datasources.store.types import UTCDateTime


class ChannelLoginCode(SQLModel, table=True):
    __tablename__ = "channel_login_code"
    code: str = Field(primary_key=True, max_length=64)
    channel: str = Field(max_length=16)
    subject: str = Field(max_length=128)
    # Demo codes printed in the README stay usable; real codes are single-use.
    reusable: bool = False
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
