"""The external systems one BFF process talks to, each behind its contract."""

from __future__ import annotations

from dataclasses import dataclass

from datasources.channels.contract import ChannelLogin
from datasources.alipay.contract import Alipay
from datasources.credit.contract import CreditPlatform
from datasources.his.billing import HISBilling
from datasources.his.contract import HIS
from datasources.wechatpay.contract import WeChatPay


@dataclass(slots=True)
class Sources:
    his: HIS
    credit: CreditPlatform
    channels: ChannelLogin
    # Money: the HIS's billing, and the payment channels this hospital takes (None: not enabled).
    billing: HISBilling | None = None
    wechatpay: WeChatPay | None = None
    alipay: Alipay | None = None
