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
    password_changed_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    # Second factor (TOTP, RFC 6238): the secret is sealed like any personal field; confirmed once
    # the staff member has entered a first valid code.
    totp_secret_enc: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    totp_confirmed_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    totp_last_step: int | None = None  # the last accepted time step: a code is good once


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
    """Legacy: the audit log as plain rows, from before records were sealed and chained
    (``AuditRecord``). Nothing writes here any more; ``python -m bff.audit seal-legacy`` moves the
    rows a database still has into the chain, sealed, and deletes them."""

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


class AuditRecord(SQLModel, table=True):
    """The audit log, sealed record by record (SM4-GCM by default) and hash-chained.

    Only what retention and the chain need stays readable (time, role, action); who did what to
    whom is inside ``sealed``. ``entry_hash`` = SM3(prev_hash ‖ seq ‖ key_id ‖ sealed), so removing,
    reordering or altering a record breaks every hash after it. Rows of the earlier, plain
    ``audit_log`` table (before sealing) stay there until they are sealed into this chain.
    """

    __tablename__ = "audit_record"
    __table_args__ = (Index("ix_audit_record_at", "at"),)
    seq: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=_at())
    actor_role: str = Field(max_length=16)
    action: str = Field(max_length=64, index=True)
    key_id: str = Field(max_length=40)
    sealed: str = Field(sa_column=Column(Text, nullable=False))
    prev_hash: str = Field(max_length=64)
    entry_hash: str = Field(max_length=64, unique=True)


class AuditChainHead(SQLModel, table=True):
    """One row: the chain's last record (locked while appending, so the chain never forks) and the
    anchor left by the retention purge (the hash verification restarts from)."""

    __tablename__ = "audit_chain_head"
    id: int = Field(default=1, primary_key=True)
    last_seq: int = 0
    last_hash: str = Field(default="", max_length=64)
    anchor_seq: int = 0
    anchor_hash: str = Field(default="", max_length=64)


class ManagedKey(SQLModel, table=True):
    """A key the BFF manages. Its material is stored only sealed by the master key (``wrapped``).

    ``state``: ACTIVE keys serve new writes (one per purpose), DECRYPT_ONLY keys still open old
    data, RETIRED keys are gone (material erased) once nothing refers to them.
    """

    __tablename__ = "managed_key"
    __table_args__ = (UniqueConstraint("purpose", "version", name="uq_managed_key_version"),)
    kid: str = Field(primary_key=True, max_length=40)
    purpose: str = Field(max_length=24, index=True)  # FIELD, BLIND_INDEX, AUDIT, TRANSPORT, CA_SM2, CA_RSA, ...
    algorithm: str = Field(max_length=24)  # A256GCM, SM4GCM, HMAC-SHA256, RSA-OAEP-2048, SM2-SM3, RSA-SHA256
    version: int
    state: str = Field(max_length=16)
    wrapped: str = Field(sa_column=Column(Text, nullable=False))
    public_pem: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    certificate_pem: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(sa_column=_at())
    expires_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    retired_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    expiry_warned_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class AppIdentity(SQLModel, table=True):
    """An app that calls the gateway from the hospital's side: a channel's front end, HIS or another
    in-house system sending callbacks, an onboarded partner, a kiosk. It signs every request."""

    __tablename__ = "app_identity"
    app_id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=64)
    kind: str = Field(max_length=16)  # FRONT_END, IN_HOUSE, PARTNER, DEVICE
    channel: str | None = Field(default=None, max_length=16)
    signature_algorithm: str = Field(max_length=16)  # SM2-SM3, RSA-SHA256
    sign_responses: bool = False
    created_at: datetime = Field(sa_column=_at())
    disabled_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class AppCertificate(SQLModel, table=True):
    """A signing certificate the BFF's CA issued to an app. The app's private key is never stored."""

    __tablename__ = "app_certificate"
    serial: str = Field(primary_key=True, max_length=40)
    app_id: str = Field(foreign_key="app_identity.app_id", index=True, max_length=32)
    algorithm: str = Field(max_length=16)
    key_bits: int
    fingerprint: str = Field(max_length=64, unique=True)
    certificate_pem: str = Field(sa_column=Column(Text, nullable=False))
    not_before: datetime = Field(sa_column=_at())
    not_after: datetime = Field(sa_column=_at())
    issued_at: datetime = Field(sa_column=_at())
    issued_by_account_id: int | None = None
    revoked_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    revocation_reason: str | None = Field(default=None, max_length=64)
    renewed_by_serial: str | None = Field(default=None, max_length=40)
    last_used_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    request_count: int = 0
    expiry_warned_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class IdempotencyRecord(SQLModel, table=True):
    """A money-moving request by its idempotency key: the first one runs, every retry gets its result.

    Keys are scoped by account and operation; ``fingerprint`` (SHA-256 of the request's input)
    refuses a key reused for a different request."""

    __tablename__ = "idempotency_record"
    account_id: int = Field(primary_key=True)
    scope: str = Field(primary_key=True, max_length=64)
    key: str = Field(primary_key=True, max_length=64)
    fingerprint: str = Field(max_length=64)
    state: str = Field(max_length=12)  # IN_PROGRESS, DONE
    result: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(sa_column=_at())
    updated_at: datetime = Field(sa_column=_at())
    expires_at: datetime = Field(sa_column=_at())



class SagaRecord(SQLModel, table=True):
    """A flow across systems (settle with insurance, write back to HIS, refund): its steps are
    persisted as they complete, so a process killed between two steps resumes or compensates."""

    __tablename__ = "saga"
    __table_args__ = (Index("ix_saga_state", "state"),)
    id: str = Field(primary_key=True, max_length=32)
    kind: str = Field(max_length=48)
    state: str = Field(max_length=16)  # RUNNING, COMPENSATING, COMPLETED, COMPENSATED, STUCK
    data: str = Field(sa_column=Column(Text, nullable=False))  # JSON: the input and each step's result
    done_steps: int = 0
    compensated_steps: int = 0
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(sa_column=_at())
    updated_at: datetime = Field(sa_column=_at())


class PaymentOrder(SQLModel, table=True):
    """One collection of money from a patient (a registration fee, bills paid together, a deposit
    top-up): the BFF's own record of what was asked, through which channel, and how far it got.

    ``open_subject`` names what the order pays while it can still be paid (``REGISTRATION:42``);
    it is unique, so two open orders never pay the same thing, and cleared when the order ends."""

    __tablename__ = "payment_order"
    __table_args__ = (
        UniqueConstraint("open_subject", name="uq_payment_order_open_subject"),
        Index("ix_payment_order_status", "status", "expires_at"),
        Index("ix_payment_order_account", "account_id", "created_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    order_no: str = Field(max_length=32, unique=True)  # out_trade_no at the channel
    account_id: int = Field(foreign_key="account.id")
    patient_id: int
    his_patient_id: str = Field(max_length=32)
    purpose: str = Field(max_length=16)  # REGISTRATION, BILLS, DEPOSIT
    subject: str = Field(sa_column=Column(Text, nullable=False))  # JSON: what is paid
    open_subject: str | None = Field(default=None, max_length=160)
    channel: str = Field(max_length=16)  # WECHAT_PAY, ALIPAY
    description: str = Field(max_length=128)
    total_fen: int
    self_pay_fen: int
    insurance_fen: int = 0
    # The insurance part (mobile insurance payment 2.0): its shares, the platform's order (payOrdId),
    # the payToken sealed like personal data, and how far it got (UPLOADED, PAID, REFUNDED, CANCELLED).
    fund_fen: int = 0
    personal_account_fen: int = 0
    family_account_fen: int = 0
    insurance_order: str | None = Field(default=None, max_length=64)
    insurance_token_enc: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    insurance_status: str | None = Field(default=None, max_length=12)
    refunded_fen: int = 0
    # CREATED → PAYING → PAID → SETTLED; CLOSED (unpaid); REFUNDED (all of it back)
    status: str = Field(max_length=12)
    # prepay_id / Alipay trade_no / a medical-insurance order's "mix_trade_no:prepay_id"
    channel_ref: str | None = Field(default=None, max_length=160)
    channel_trade_no: str | None = Field(default=None, max_length=64)  # the paid transaction's id
    his_receipt_no: str | None = Field(default=None, max_length=64)
    invoice_url: str | None = Field(default=None, max_length=512)
    problem: str | None = Field(default=None, max_length=64)  # why a paid order was refunded, if it was
    write_back_attempts: int = 0
    created_at: datetime = Field(sa_column=_at())
    expires_at: datetime = Field(sa_column=_at())
    paid_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    settled_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    closed_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    updated_at: datetime = Field(sa_column=_at())


class PaymentRefund(SQLModel, table=True):
    """Money going back by the route it came: recorded before the channel is asked, so a process that
    dies mid-way leaves a row the sweeper finishes; ``refund_no`` is the channel's out_refund_no."""

    __tablename__ = "payment_refund"
    __table_args__ = (Index("ix_payment_refund_status", "status"),)
    id: int | None = Field(default=None, primary_key=True)
    refund_no: str = Field(max_length=32, unique=True)
    order_no: str = Field(max_length=32, index=True)
    amount_fen: int
    self_pay_fen: int
    insurance_fen: int = 0
    reason: str = Field(max_length=128)
    cause: str = Field(max_length=24)  # PATIENT_CANCELLED, NOT_PAYABLE_AT_HIS, OPERATOR, RECONCILIATION
    bill_ids: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # JSON
    # PENDING_APPROVAL → REQUESTED → PROCESSING → SUCCEEDED | FAILED; REJECTED by an operator
    status: str = Field(max_length=16)
    requested_by: int | None = None
    approved_by: int | None = None
    channel_refund_id: str | None = Field(default=None, max_length=64)
    failure: str | None = Field(default=None, max_length=256)
    his_written_back_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    created_at: datetime = Field(sa_column=_at())
    updated_at: datetime = Field(sa_column=_at())
    succeeded_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class PaymentNotice(SQLModel, table=True):
    """A channel's notification, kept once by its id: a repeated one is answered without acting again."""

    __tablename__ = "payment_notice"
    __table_args__ = (UniqueConstraint("channel", "notice_id", name="uq_payment_notice"),)
    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    notice_id: str = Field(max_length=64)
    order_no: str = Field(max_length=64, index=True)
    event: str = Field(max_length=32)
    received_at: datetime = Field(sa_column=_at())


class ReconciliationRun(SQLModel, table=True):
    """One comparison of a day's payments and refunds of one channel across the channel's bill, the
    HIS ledger and the BFF's own orders. A day run again gets a new row: every run is kept as run.

    ``schedule_key`` is set by the daily job only (``SCHEDULE:<day>:<channel>``); unique, so several
    BFF processes starting the job at once make one run."""

    __tablename__ = "reconciliation_run"
    __table_args__ = (Index("ix_reconciliation_run_day", "day", "channel"),)
    id: int | None = Field(default=None, primary_key=True)
    day: date
    channel: str = Field(max_length=16)  # WECHAT_PAY, ALIPAY
    status: str = Field(max_length=16)  # RUNNING, OK, DISCREPANCIES, FAILED
    started_by: str = Field(max_length=32)  # OPERATOR or SCHEDULE
    started_by_account_id: int | None = None
    schedule_key: str | None = Field(default=None, max_length=48, unique=True)
    totals: str = Field(default="{}", sa_column=Column(Text, nullable=False))  # JSON: per side, count and fen
    failure: str | None = Field(default=None, max_length=256)
    started_at: datetime = Field(sa_column=_at())
    finished_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class ReconciliationItem(SQLModel, table=True):
    """One discrepancy of a run: a payment or refund the three sides do not tell alike."""

    __tablename__ = "reconciliation_item"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="reconciliation_run.id", index=True)
    kind: str = Field(max_length=24)  # MISSING_AT_CHANNEL, MISSING_AT_HIS, MISSING_AT_BFF, AMOUNT_/STATUS_MISMATCH
    entry: str = Field(max_length=8)  # PAYMENT or REFUND
    reference: str = Field(max_length=64)  # order_no / out_trade_no, refund_no / out_refund_no
    order_no: str = Field(max_length=64)
    channel_fen: int | None = None
    his_fen: int | None = None
    bff_fen: int | None = None
    channel_status: str | None = Field(default=None, max_length=16)
    his_status: str | None = Field(default=None, max_length=16)
    bff_status: str | None = Field(default=None, max_length=16)
    reason: str = Field(max_length=256)
    action: str = Field(max_length=24)  # what to do about it: REFUND_PENDING_APPROVAL, MANUAL, ...
    refund_no: str | None = Field(default=None, max_length=32, index=True)  # the refund it proposed
    resolved_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    resolved_by: int | None = None
