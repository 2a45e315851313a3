"""The operators' reconciliation pages: runs by day and channel, their discrepancies and report, the
refunds waiting for approval. Fields unpack, call resolvers/reconciliation, convert.

The report is a field (``reportXlsx``, base64) rather than a download route: it is authorized,
signed and limited like every other field of the console, with no second way of reading a bearer
token in ``bff/``; a day's workbook is a few kilobytes."""

from __future__ import annotations

import base64
import datetime as dt
from enum import Enum
from typing import Annotated

import strawberry

from datasources.store.models import ReconciliationItem
from resolvers.apps import Audited
from resolvers.errors import DomainError, NotAllowed, NotFound
from resolvers.reconciliation import approvals, report, runs
from resolvers.reconciliation import compare as cmp
from schema.common import Ctx, InvalidInputError, Money, NotAllowedError, NotFoundError
from schema.enums import PaymentChannel
from schema.errors import user_error
from schema.payments import Refund
from schema.permissions import CanApproveRefunds, CanReconcile


@strawberry.enum(description="OK: the three sides agree; DISCREPANCIES: see the list; FAILED: a side could not be "
                 "read (a channel's bill exists only once the day is over); RUNNING: not finished (or it died).")
class ReconciliationStatus(Enum):
    RUNNING = "RUNNING"
    OK = "OK"
    DISCREPANCIES = "DISCREPANCIES"
    FAILED = "FAILED"


@strawberry.enum(description="What the three sides disagree on, for one payment or refund.")
class DiscrepancyKind(Enum):
    MISSING_AT_CHANNEL = "MISSING_AT_CHANNEL"
    MISSING_AT_HIS = "MISSING_AT_HIS"
    MISSING_AT_BFF = "MISSING_AT_BFF"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    STATUS_MISMATCH = "STATUS_MISMATCH"


@strawberry.enum(description="REFUND_PENDING_APPROVAL: a full refund was made and waits for approval (refundNo); "
                 "AWAIT_BFF: the BFF finishes it by itself (a write-back or a refund retried); MANUAL: someone checks "
                 "the channel's back office and the HIS.")
class DiscrepancyAction(Enum):
    REFUND_PENDING_APPROVAL = "REFUND_PENDING_APPROVAL"
    AWAIT_BFF = "AWAIT_BFF"
    MANUAL = "MANUAL"


@strawberry.type(description="One side's count and sum of the day's payments and refunds.")
class ReconciliationSide:
    payments: int
    payments_amount: Money
    refunds: int
    refunds_amount: Money

    @staticmethod
    def of(x: cmp.Side) -> ReconciliationSide:
        return ReconciliationSide(
            payments=x.payments, payments_amount=Money.of(x.payments_fen), refunds=x.refunds,
            refunds_amount=Money.of(x.refunds_fen),
        )


@strawberry.type
class ReconciliationTotals:
    channel: ReconciliationSide = strawberry.field(description="The channel's bill.")
    his: ReconciliationSide = strawberry.field(description="The HIS ledger.")
    bff: ReconciliationSide = strawberry.field(description="The BFF's orders (by paid time) and refunds.")


@strawberry.type(description="A payment or refund the channel, the HIS and the BFF do not tell alike.")
class Discrepancy:
    id: strawberry.ID
    kind: DiscrepancyKind
    entry: str = strawberry.field(description="PAYMENT or REFUND.")
    reference: str = strawberry.field(description="The order number (payments) or refund number (refunds).")
    order_no: str
    channel_amount: Money | None
    his_amount: Money | None
    bff_amount: Money | None
    channel_status: str | None
    his_status: str | None
    bff_status: str | None
    reason: str
    action: DiscrepancyAction
    refund_no: str | None = strawberry.field(description="The refund proposed, waiting for approval.")
    resolved_at: dt.datetime | None
    resolved_by: strawberry.ID | None

    @staticmethod
    def of(x: ReconciliationItem) -> Discrepancy:
        def money(fen: int | None) -> Money | None:
            return None if fen is None else Money.of(fen)

        return Discrepancy(
            id=strawberry.ID(str(x.id)), kind=DiscrepancyKind(x.kind), entry=x.entry, reference=x.reference,
            order_no=x.order_no, channel_amount=money(x.channel_fen), his_amount=money(x.his_fen),
            bff_amount=money(x.bff_fen), channel_status=x.channel_status, his_status=x.his_status,
            bff_status=x.bff_status, reason=x.reason, action=DiscrepancyAction(x.action), refund_no=x.refund_no,
            resolved_at=x.resolved_at, resolved_by=strawberry.ID(str(x.resolved_by)) if x.resolved_by else None,
        )


@strawberry.type(description="One reconciliation of a day and channel; running a day again makes another run.")
class ReconciliationRun:
    id: strawberry.ID
    day: dt.date
    channel: PaymentChannel
    status: ReconciliationStatus
    started_by: str = strawberry.field(description="OPERATOR or SCHEDULE (the daily job).")
    started_by_account_id: strawberry.ID | None
    started_at: dt.datetime
    finished_at: dt.datetime | None
    failure: str | None
    totals: ReconciliationTotals | None
    discrepancies: list[Discrepancy]
    run: strawberry.Private[runs.Run]

    @staticmethod
    def of(x: runs.Run) -> ReconciliationRun:
        return ReconciliationRun(
            id=strawberry.ID(str(x.id)), day=x.day, channel=PaymentChannel(x.channel),
            status=ReconciliationStatus(x.status), started_by=x.started_by,
            started_by_account_id=strawberry.ID(str(x.started_by_account_id)) if x.started_by_account_id else None,
            started_at=x.started_at, finished_at=x.finished_at, failure=x.failure,
            totals=ReconciliationTotals(
                channel=ReconciliationSide.of(x.totals.channel), his=ReconciliationSide.of(x.totals.his),
                bff=ReconciliationSide.of(x.totals.bff),
            ) if x.totals else None,
            discrepancies=[Discrepancy.of(i) for i in x.items], run=x,
        )

    @strawberry.field(description="The run as an .xlsx workbook (Chinese headers), base64.")
    def report_xlsx(self) -> str:
        return base64.b64encode(report.xlsx(self.run)).decode("ascii")


@strawberry.type(description="A refund waiting for an operator's approval.")
class PendingRefund:
    refund_no: str
    order_no: str
    channel: PaymentChannel
    amount: Money
    reason: str
    cause: str = strawberry.field(description="RECONCILIATION, OPERATOR, ...: what proposed it.")
    created_at: dt.datetime

    @staticmethod
    def of(x: approvals.PendingRefund) -> PendingRefund:
        return PendingRefund(
            refund_no=x.refund_no, order_no=x.order_no, channel=PaymentChannel(x.channel),
            amount=Money.of(x.amount_fen), reason=x.reason, cause=x.cause, created_at=x.created_at,
        )


@strawberry.type
class ReconciliationConsole:
    @strawberry.field(description="Newest first, every run of a day (not only the last).")
    async def runs(
        self, info: Ctx, day: dt.date | None = None, channel: PaymentChannel | None = None
    ) -> list[ReconciliationRun]:
        found = await runs.runs_of(info.context.deps, day=day, channel=channel.value if channel else None)
        return [ReconciliationRun.of(x) for x in found]

    @strawberry.field
    async def run(self, info: Ctx, id: strawberry.ID) -> ReconciliationRun | None:
        found = await runs.runs_by_ids(info.context.deps, [int(id)]) if str(id).isdigit() else []
        return ReconciliationRun.of(found[0]) if found else None

    @strawberry.field
    async def pending_refunds(self, info: Ctx) -> list[PendingRefund]:
        return [PendingRefund.of(x) for x in await approvals.pending_refunds(info.context.deps)]


@strawberry.input
class RunReconciliationInput:
    day: dt.date = strawberry.field(description="A day that is over (Asia/Shanghai).")
    channel: PaymentChannel


@strawberry.input
class ApproveRefundsInput:
    refund_nos: list[str] = strawberry.field(description="One to fifty; each is decided on its own.")


@strawberry.input
class RejectRefundInput:
    refund_no: str
    reason: str


@strawberry.input
class ResolveDiscrepancyInput:
    id: strawberry.ID
    note: str = strawberry.field(description="How it was handled (kept in the audit log).")


@strawberry.type
class ReconciliationRan:
    run: ReconciliationRun


@strawberry.type(
    description="One refund of the batch: approved (`refund` says how far it got) or not (`errorCode`, `errorMessage`)."
)
class RefundApproval:
    refund_no: str
    approved: bool
    refund: Refund | None
    error_code: str | None
    error_message: str | None


@strawberry.type
class RefundsApproved:
    results: list[RefundApproval]


@strawberry.type
class RefundRejected:
    refund: Refund


@strawberry.type
class DiscrepancyResolved:
    discrepancy: Discrepancy


RunReconciliationPayload = Annotated[
    ReconciliationRan | InvalidInputError | NotAllowedError, strawberry.union("RunReconciliationPayload")
]
ApproveRefundsPayload = Annotated[
    RefundsApproved | InvalidInputError | NotAllowedError, strawberry.union("ApproveRefundsPayload")
]
ResolveDiscrepancyPayload = Annotated[
    DiscrepancyResolved | InvalidInputError | NotAllowedError | NotFoundError,
    strawberry.union("ResolveDiscrepancyPayload"),
]
RejectRefundPayload = Annotated[
    RefundRejected | InvalidInputError | NotAllowedError | NotFoundError, strawberry.union("RejectRefundPayload")
]


def _audited(info: Ctx) -> Audited:
    viewer = info.context.viewer
    return Audited(info.context.deps.audit, viewer.account_id, viewer.role or "", info.context.request_id)


@strawberry.type
class ReconciliationQuery:
    @strawberry.field(
        permission_classes=[CanReconcile], description="Payment reconciliation runs and pending refunds."
    )
    def reconciliation(self) -> ReconciliationConsole:
        return ReconciliationConsole()


@strawberry.type
class ReconciliationMutation:
    @strawberry.mutation(
        permission_classes=[CanReconcile], description="Reconciles a day of one channel now; a new run each time."
    )
    async def run_reconciliation(self, info: Ctx, input: RunReconciliationInput) -> RunReconciliationPayload:
        try:
            ran = await runs.reconcile(
                info.context.deps, input.day, input.channel.value, started_by=runs.OPERATOR,
                account_id=info.context.viewer.account_id,
            )
        except DomainError as exc:
            return user_error(exc)
        return ReconciliationRan(run=ReconciliationRun.of(ran))

    @strawberry.mutation(permission_classes=[CanApproveRefunds])
    async def approve_refunds(self, info: Ctx, input: ApproveRefundsInput) -> ApproveRefundsPayload:
        deps = info.context.deps
        if deps.payments is None:
            return user_error(NotAllowed("No payment channel is enabled.", "CHANNEL_NOT_ENABLED"))
        try:
            decisions = await approvals.approve(deps, deps.payments, input.refund_nos, audited=_audited(info))
        except DomainError as exc:
            return user_error(exc)
        return RefundsApproved(results=[
            RefundApproval(
                refund_no=d.refund_no, approved=d.error is None, refund=Refund.of(d.refund) if d.refund else None,
                error_code=getattr(d.error, "reason", None) or (d.error.code if d.error else None),
                error_message=d.error.message if d.error else None,
            )
            for d in decisions
        ])

    @strawberry.mutation(permission_classes=[CanApproveRefunds])
    async def reject_refund(self, info: Ctx, input: RejectRefundInput) -> RejectRefundPayload:
        try:
            refund = await approvals.reject(
                info.context.deps, input.refund_no, reason=input.reason, audited=_audited(info)
            )
        except DomainError as exc:
            return user_error(exc)
        return RefundRejected(refund=Refund.of(refund))

    @strawberry.mutation(
        permission_classes=[CanReconcile],
        description="Closes a discrepancy handled outside the BFF; a refund's items close with its decision.",
    )
    async def resolve_discrepancy(self, info: Ctx, input: ResolveDiscrepancyInput) -> ResolveDiscrepancyPayload:
        if not str(input.id).isdigit():
            return user_error(NotFound("No such discrepancy."))
        try:
            item = await approvals.resolve_item(
                info.context.deps, int(input.id), note=input.note, audited=_audited(info)
            )
        except DomainError as exc:
            return user_error(exc)
        return DiscrepancyResolved(discrepancy=Discrepancy.of(item))
