"""The external systems one BFF process talks to, each behind its contract."""

from __future__ import annotations

from dataclasses import dataclass

from datasources.alipay.contract import Alipay
from datasources.channels.contract import ChannelLogin
from datasources.credit.contract import CreditPlatform
from datasources.face.contract import FaceVerification
from datasources.his.billing import HISBilling
from datasources.his.contract import HIS
from datasources.his.inpatient import HISInpatient
from datasources.mobile_insurance.contract import MobileInsurance
from datasources.wechatpay.contract import WeChatPay
from datasources.wechatpay.medins_contract import WeChatMedInsPay


@dataclass(slots=True)
class Sources:
    his: HIS
    credit: CreditPlatform
    channels: ChannelLogin
    # Money: the HIS's billing, and the payment channels this hospital takes (None: not enabled).
    billing: HISBilling | None = None
    inpatient: HISInpatient | None = None
    wechatpay: WeChatPay | None = None
    alipay: Alipay | None = None
    # Medical insurance payments: the mobile insurance platform (2.0) and WeChat Pay's med-ins orders.
    mobile_insurance: MobileInsurance | None = None
    wechat_med_ins: WeChatMedInsPay | None = None
    # Kiosks: face verification of the person in front of the camera.
    face: FaceVerification | None = None
