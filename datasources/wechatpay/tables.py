"""The WeChat Pay sandbox's own tables (prefixed ``wxpay_``): orders, refunds, notifications sent, and
medical-insurance orders with the insurance refunds told."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from datasources.store.types import UTCDateTime


def _at(nullable: bool = False) -> Column[datetime]:
    return Column(UTCDateTime(), nullable=nullable)


class WxpayOrder(SQLModel, table=True):
    __tablename__ = "wxpay_order"
    id: int | None = Field(default=None, primary_key=True)
    mchid: str = Field(max_length=32)
    appid: str = Field(max_length=32)
    out_trade_no: str = Field(max_length=32, unique=True)
    prepay_id: str = Field(max_length=64, unique=True)
    trade_type: str = Field(default="JSAPI", max_length=16)  # JSAPI, NATIVE
    code_url: str | None = Field(default=None, max_length=64, index=True)  # NATIVE: the QR code's content
    description: str = Field(max_length=127)
    amount_fen: int
    payer_openid: str | None = Field(default=None, max_length=128)  # NATIVE: None until paid
    notify_url: str = Field(max_length=256)
    expires_at: datetime = Field(sa_column=_at())
    created_at: datetime = Field(sa_column=_at())
    trade_state: str = Field(max_length=16)  # NOTPAY, SUCCESS, REFUND, CLOSED
    transaction_id: str | None = Field(default=None, max_length=32, unique=True)
    success_time: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    refunded_fen: int = 0  # refunds asked and not failed (PROCESSING + SUCCESS)


class WxpayRefund(SQLModel, table=True):
    __tablename__ = "wxpay_refund"
    id: int | None = Field(default=None, primary_key=True)
    out_refund_no: str = Field(max_length=64, unique=True)
    refund_id: str = Field(max_length=32, unique=True)
    out_trade_no: str = Field(max_length=32, index=True)
    transaction_id: str = Field(max_length=32)
    refund_fen: int
    total_fen: int
    reason: str = Field(default="", max_length=80)
    notify_url: str = Field(default="", max_length=256)
    status: str = Field(max_length=16)  # PROCESSING, SUCCESS, ABNORMAL, CLOSED
    created_at: datetime = Field(sa_column=_at())
    success_time: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class WxpayNotification(SQLModel, table=True):
    """A notification as sent: its body (the encrypted resource inside) and how delivery went."""

    __tablename__ = "wxpay_notification"
    id: int | None = Field(default=None, primary_key=True)
    notify_id: str = Field(max_length=64, unique=True)
    event_type: str = Field(max_length=32)
    out_trade_no: str = Field(max_length=32, index=True)
    url: str = Field(max_length=256)
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=_at())
    attempts: int = 0
    last_status: int | None = None
    delivered_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class WxpayMedInsOrder(SQLModel, table=True):
    """A medical-insurance order (``/v3/med-ins/orders``). The payer is not kept: only ``fingerprint``,
    a SHA-256 over the whole request, to tell a repeated request from other content."""

    __tablename__ = "wxpay_med_ins_order"
    id: int | None = Field(default=None, primary_key=True)
    mix_trade_no: str = Field(max_length=32, unique=True)
    out_trade_no: str = Field(max_length=64, unique=True)
    fingerprint: str = Field(max_length=64)
    mix_pay_type: str = Field(max_length=24)
    order_type: str = Field(max_length=24)
    appid: str = Field(max_length=32)
    openid: str = Field(max_length=128)
    serial_no: str = Field(max_length=64)
    pay_order_id: str | None = Field(default=None, max_length=64)
    prepay_id: str | None = Field(default=None, max_length=64, index=True)
    total_fee: int
    med_ins_gov_fee: int
    med_ins_self_fee: int
    med_ins_other_fee: int
    med_ins_cash_fee: int
    wechat_pay_cash_fee: int
    callback_url: str = Field(max_length=256)
    attach: str | None = Field(default=None, max_length=128)
    med_ins_test_env: bool = False
    mix_pay_status: str = Field(max_length=24)  # MIX_PAY_CREATED, MIX_PAY_SUCCESS, MIX_PAY_FAIL
    self_pay_status: str = Field(max_length=24)  # refunds are read from the prepay's order
    med_ins_pay_status: str = Field(max_length=24)
    created_at: datetime = Field(sa_column=_at())
    paid_time: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class WxpayMedInsRefund(SQLModel, table=True):
    """What the merchant said the insurance gave back (``/v3/med-ins/refunds/notify``)."""

    __tablename__ = "wxpay_med_ins_refund"
    id: int | None = Field(default=None, primary_key=True)
    out_refund_no: str = Field(max_length=64, unique=True)
    mix_trade_no: str = Field(max_length=32, index=True)
    med_refund_total_fee: int
    med_refund_gov_fee: int
    med_refund_self_fee: int
    med_refund_other_fee: int
    refund_time: datetime = Field(sa_column=_at())
    created_at: datetime = Field(sa_column=_at())
