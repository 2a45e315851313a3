"""The external systems one BFF process talks to, each behind its contract."""

from __future__ import annotations

from dataclasses import dataclass

from datasources.channels.contract import ChannelLogin
from datasources.credit.contract import CreditPlatform
from datasources.his.contract import HIS


@dataclass(slots=True)
class Sources:
    his: HIS
    credit: CreditPlatform
    channels: ChannelLogin
