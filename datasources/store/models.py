"""The BFF's own tables: what no hospital system owns. Never GraphQL types; resolvers convert."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from datasources.store.types import UTCDateTime


def _at(nullable: bool = False) -> Column[datetime]:
    return Column(UTCDateTime(), nullable=nullable)


class Account(SQLModel, table=True):
    """A login: one per channel identity for patients, one per staff member."""

    __tablename__ = "account"
    id: int | None = Field(default=None, primary_key=True)
    role: str = Field(max_length=16, index=True)  # PATIENT, DOCTOR, PHARMACIST, OPERATOR, DEVICE
    display_name: str = Field(max_length=64)
    his_staff_id: str | None = Field(default=None, max_length=32, index=True)  # doctors: HIS doctor id
    created_at: datetime = Field(sa_column=_at())
    disabled_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class ChannelIdentity(SQLModel, table=True):
    """WeChat openid, Alipay user_id: how a patient account is found again on the next login."""

    __tablename__ = "channel_identity"
    __table_args__ = (UniqueConstraint("channel", "subject", name="uq_channel_identity_subject"),)
    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    channel: str = Field(max_length=16)
    subject: str = Field(max_length=128)
    created_at: datetime = Field(sa_column=_at())


class StaffCredential(SQLModel, table=True):
    """Password authenticator of a staff account (argon2id), with lockout after repeated failures."""

    __tablename__ = "staff_credential"
    account_id: int = Field(foreign_key="account.id", primary_key=True)
    username: str = Field(max_length=64, unique=True)
    password_hash: str = Field(max_length=255)
    failed_attempts: int = 0
    locked_until: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class AuthSession(SQLModel, table=True):
    """A bearer session; only the token's SHA-256 is stored."""

    __tablename__ = "auth_session"
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    channel: str = Field(max_length=16)
    created_at: datetime = Field(sa_column=_at())
    last_seen_at: datetime = Field(sa_column=_at())
    expires_at: datetime = Field(sa_column=_at())
    revoked_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class OperatorRole(SQLModel, table=True):
    __tablename__ = "operator_role"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    description: str = Field(default="", max_length=255)


class RolePermission(SQLModel, table=True):
    __tablename__ = "role_permission"
    role_id: int = Field(foreign_key="operator_role.id", primary_key=True)
    permission: str = Field(max_length=64, primary_key=True)


class AccountRole(SQLModel, table=True):
    __tablename__ = "account_role"
    account_id: int = Field(foreign_key="account.id", primary_key=True)
    role_id: int = Field(foreign_key="operator_role.id", primary_key=True)


class Patient(SQLModel, table=True):
    """A person an account manages (就诊人). ID number and phone are encrypted, found by blind index."""

    __tablename__ = "patient"
    __table_args__ = (Index("ix_patient_account_active", "account_id", "removed_at"),)
    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id")
    relationship: str = Field(max_length=16)  # SELF, CHILD, PARENT, SPOUSE, OTHER
    name: str = Field(max_length=64)
    document_type: str = Field(max_length=24)  # RESIDENT_ID, PASSPORT, ...
    document_number_enc: str = Field(sa_column=Column(Text, nullable=False))
    document_number_index: str = Field(max_length=64, index=True)
    phone_enc: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    phone_index: str | None = Field(default=None, max_length=64, index=True)
    gender: str | None = Field(default=None, max_length=8)  # MALE, FEMALE
    birth_date: date | None = None
    nationality: str | None = Field(default=None, max_length=8)  # ISO 3166 alpha-3, CHN
    ethnicity: str | None = Field(default=None, max_length=32)
    occupation: str | None = Field(default=None, max_length=64)
    address: str | None = Field(default=None, max_length=255)
    address_detail: str | None = Field(default=None, max_length=255)
    his_patient_id: str | None = Field(default=None, max_length=32, index=True)
    # Real-name links, filled by later capabilities (e-health card, insurance, face verification).
    health_card_id: str | None = Field(default=None, max_length=64)
    insurance_person_no: str | None = Field(default=None, max_length=64)
    insured_area: str | None = Field(default=None, max_length=16)
    face_verified_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    created_at: datetime = Field(sa_column=_at())
    updated_at: datetime = Field(sa_column=_at())
    removed_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class MedicalCardBinding(SQLModel, table=True):
    """A HIS medical card bound to a patient; a patient may hold several."""

    __tablename__ = "medical_card_binding"
    __table_args__ = (UniqueConstraint("patient_id", "card_no_index", name="uq_card_binding"),)
    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    card_no_enc: str = Field(sa_column=Column(Text, nullable=False))
    card_no_index: str = Field(max_length=64)
    card_type: str = Field(max_length=16)
    his_patient_id: str = Field(max_length=32)
    bound_at: datetime = Field(sa_column=_at())


class Notification(SQLModel, table=True):
    """The viewer's message center; stored before it is pushed, so nothing is missed."""

    __tablename__ = "notification"
    __table_args__ = (Index("ix_notification_unread", "account_id", "read_at"),)
    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id")
    kind: str = Field(max_length=32)
    title: str = Field(max_length=128)
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=_at())
    read_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class AuditEntry(SQLModel, table=True):
    """Every staff action and every read of unmasked personal data."""

    __tablename__ = "audit_log"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=_at())
    actor_account_id: int | None = Field(default=None, index=True)
    actor_role: str = Field(max_length=16)
    action: str = Field(max_length=64, index=True)
    target_type: str = Field(max_length=32)
    target_id: str = Field(max_length=64)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False))
    request_id: str = Field(default="", max_length=64)
