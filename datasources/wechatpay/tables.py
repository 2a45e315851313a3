"""The WeChat Pay sandbox's own tables (prefixed ``wxpay_``): orders, refunds, notifications sent."""

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
    description: str = Field(max_length=127)
    amount_fen: int
    payer_openid: str = Field(max_length=128)
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
