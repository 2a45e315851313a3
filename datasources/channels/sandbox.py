"""Channel login sandbox: single-use, expiring codes as WeChat and Alipay issue them."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import or_, update
from sqlmodel import col

from datasources.channels import contract as c
from datasources.channels.tables import ChannelLoginCode
from datasources.clock import Clock
from datasources.errors import SourceRejected
from datasources.store.db import Database

CODE_LIFETIME = timedelta(minutes=5)


class SandboxChannelLogin:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def exchange(self, channel: str, code: str) -> c.ChannelSubject:
        now = self.clock.now()
        async with self.db.writing() as s:
            # Consume first (a write), so two logins with one code cannot both succeed.
            result = await s.execute(
                update(ChannelLoginCode)
                .where(
                    col(ChannelLoginCode.code) == code,
                    col(ChannelLoginCode.channel) == channel,
                    or_(col(ChannelLoginCode.reusable), col(ChannelLoginCode.used_at).is_(None)),
                    or_(col(ChannelLoginCode.expires_at).is_(None), col(ChannelLoginCode.expires_at) > now),
                )
                .values(used_at=now)
                .returning(col(ChannelLoginCode.subject))
            )
            subject = result.scalar_one_or_none()
        if subject is None:
            raise SourceRejected(channel.lower(), c.INVALID_CODE, "the login code is unknown, used or expired")
        return c.ChannelSubject(channel=channel, subject=subject)

    # Sandbox operation: what the mini-program runtime does when the user opens the app.
    async def issue_code(self, channel: str, subject: str, *, reusable: bool = False, code: str | None = None) -> str:
        code = code or secrets.token_urlsafe(18)
        async with self.db.writing() as s:
            s.add(
                ChannelLoginCode(
                    code=code,
                    channel=channel,
                    subject=subject,
                    reusable=reusable,
                    expires_at=None if reusable else self.clock.now() + CODE_LIFETIME,
                )
            )
        return code
