"""Channel login: exchange a mini-program's one-time login code for the user's stable id.

WeChat: ``wx.login`` code → ``code2session`` → openid. Alipay: ``my.getAuthCode`` auth code →
``alipay.system.oauth.token`` → user_id. Codes are single-use and expire after five minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

WECHAT = "WECHAT"
ALIPAY = "ALIPAY"
INVALID_CODE = "INVALID_CODE"


@dataclass(frozen=True, slots=True)
class ChannelSubject:
    channel: str
    subject: str  # openid or user_id


class ChannelLogin(Protocol):
    async def exchange(self, channel: str, code: str) -> ChannelSubject:
        """Raises ``SourceRejected(code=INVALID_CODE)`` for an unknown, used or expired code."""
        ...
