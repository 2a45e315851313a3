"""The credit platform sandbox's tables (prefixed ``credit_``)."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class CreditRecord(SQLModel, table=True):
    __tablename__ = "credit_record"
    document_number: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=64)
    arrears_here_fen: int = 0
    arrears_elsewhere_fen: int = 0


class CreditControl(SQLModel, table=True):
    """Operating state of the simulated platform: lets a test or a demo take it down."""

    __tablename__ = "credit_control"
    id: int = Field(default=1, primary_key=True)
    available: bool = True
