"""The Alipay sandbox's own tables (prefixed ``alipay_``): trades, refunds, async notifies."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from datasources.store.types import UTCDateTime


def _at(nullable: bool = False) -> Column[datetime]:
    return Column(UTCDateTime(), nullable=nullable)


class AlipayTrade(SQLModel, table=True):
    __tablename__ = "alipay_trade"
    __table_args__ = (UniqueConstraint("app_id", "out_trade_no", name="uq_alipay_trade_out_trade_no"),)
    trade_no: str = Field(primary_key=True, max_length=64)
    app_id: str = Field(max_length=32)
    out_trade_no: str = Field(max_length=64)
    subject: str = Field(max_length=256)
    total_fen: int
    buyer_id: str = Field(max_length=32)  # "" for a precreated trade until someone scans and pays
    product_code: str = Field(default="JSAPI_PAY", max_length=32)  # JSAPI_PAY (create), FACE_TO_FACE_PAYMENT
    qr_code: str | None = Field(default=None, max_length=128, index=True)  # precreated trades' code
    notify_url: str = Field(max_length=512)
    status: str = Field(max_length=16)
    refunded_fen: int = 0
    created_at: datetime = Field(sa_column=_at())
    expires_at: datetime = Field(sa_column=_at())
    paid_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    closed_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class AlipayRefund(SQLModel, table=True):
    __tablename__ = "alipay_refund"
    __table_args__ = (UniqueConstraint("trade_no", "out_request_no", name="uq_alipay_refund_request"),)
    id: int | None = Field(default=None, primary_key=True)
    trade_no: str = Field(foreign_key="alipay_trade.trade_no", index=True, max_length=64)
    out_request_no: str = Field(max_length=64)
    refund_fen: int
    reason: str = Field(default="", max_length=256)
    refunded_at: datetime = Field(sa_column=_at())


class AlipayNotification(SQLModel, table=True):
    """An async notify to deliver: the signed form, where it goes, and whether the receiver said success."""

    __tablename__ = "alipay_notification"
    id: int | None = Field(default=None, primary_key=True)  # the order notifies were caused in
    notify_id: str = Field(max_length=64, unique=True)
    trade_no: str = Field(foreign_key="alipay_trade.trade_no", index=True, max_length=64)
    notify_url: str = Field(max_length=512)
    form_json: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=_at())
    attempts: int = 0
    acknowledged_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
