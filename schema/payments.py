"""Payments: pending bills, paying a registration or bills through the patient's own app, the
payment orders and their refunds. Fields unpack, call resolvers/payments, convert."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Annotated

import strawberry

from datasources.his import billing as b
from resolvers.errors import DomainError
from resolvers.payment_link import payment_qr_png
from resolvers.payments import deposits, insured, outpatient, statements
from resolvers.payments import orders as o
from resolvers.payments import refunds as r
from schema.common import (
    Ctx,
    IdempotencyConflictError,
    InsufficientPersonalAccountError,
    InsuranceNotAuthorizedError,
    InvalidInputError,
    MedicalCardRequiredError,
    Money,
    NotAllowedError,
    NotFoundError,
    OrderClosedError,
    ServiceUnavailableError,
)
from schema.enums import BillCategory, DepositKind, PaymentChannel, PaymentOrderStatus, PaymentPurpose, RefundStatus
from schema.errors import user_error
from schema.patients import parse_id
from schema.permissions import IsPatient


@strawberry.type(description="One line of a bill: what, how many, at what price.")
class BillItem:
    code: str
    name: str
    spec: str
    unit: str
    quantity: str = strawberry.field(description='Decimal text, e.g. "2" or "0.5".')
    unit_price: Money
    amount: Money
    insurance_class: str = strawberry.field(description='Insurance catalogue class "A", "B" or "C"; "" if none.')

    @staticmethod
    def of(i: b.BillItem) -> BillItem:
        return BillItem(
            code=i.code, name=i.name, spec=i.spec, unit=i.unit, quantity=i.quantity,
            unit_price=Money.of(i.unit_price_fen), amount=Money.of(i.amount_fen), insurance_class=i.insurance_class,
        )


@strawberry.type(description="待缴费: a bill the hospital is waiting for (several can be paid together).")
class PendingBill:
    id: strawberry.ID
    patient_id: strawberry.ID | None = strawberry.field(description="The account's patient; null at a kiosk.")
    registration_id: strawberry.ID | None
    department_id: strawberry.ID
    doctor_id: strawberry.ID
    category: BillCategory
    title: str
    total: Money = strawberry.field(description="Always the sum of the items.")
    items: list[BillItem]
    created_at: dt.datetime

    @staticmethod
    def of(bill: b.Bill, patient_id: int | None) -> PendingBill:
        return PendingBill(
            id=strawberry.ID(bill.id), patient_id=strawberry.ID(str(patient_id)) if patient_id is not None else None,
            registration_id=strawberry.ID(bill.registration_id) if bill.registration_id else None,
            department_id=strawberry.ID(bill.department_id), doctor_id=strawberry.ID(bill.doctor_id),
            category=BillCategory(bill.category), title=bill.title, total=Money.of(bill.total_fen),
            items=[BillItem.of(i) for i in bill.items], created_at=bill.created_at,
        )


@strawberry.type(description="Money going back to where it came from.")
class Refund:
    refund_no: str
    amount: Money
    status: RefundStatus
    reason: str
    created_at: dt.datetime
    succeeded_at: dt.datetime | None

    @staticmethod
    def of(x: r.Refund) -> Refund:
        return Refund(
            refund_no=x.refund_no, amount=Money.of(x.amount_fen), status=RefundStatus(x.status), reason=x.reason,
            created_at=x.created_at, succeeded_at=x.succeeded_at,
        )


@strawberry.type(description="What the medical insurance paid of a payment (医保统筹, 个人账户, 共济账户).")
class InsuranceShare:
    fund: Money
    personal_account: Money
    family_account: Money
    status: str = strawberry.field(description="UPLOADED, PAID, REFUNDED or CANCELLED at the insurance platform.")


@strawberry.type(description="One payment: what for, how, and how far it got.")
class PaymentOrder:
    order_no: str
    purpose: PaymentPurpose
    channel: PaymentChannel
    description: str
    amount: Money
    self_pay: Money = strawberry.field(description="Paid in cash through the channel (all of it without insurance).")
    insurance: InsuranceShare | None
    refunded: Money = strawberry.field(description="Refunded or being refunded.")
    status: PaymentOrderStatus
    patient_id: strawberry.ID
    created_at: dt.datetime
    expires_at: dt.datetime = strawberry.field(description="Unpaid, the order closes at this time.")
    paid_at: dt.datetime | None
    settled_at: dt.datetime | None
    receipt_no: str | None
    invoice_url: str | None = strawberry.field(description="The e-invoice (电子票据), once the hospital issued it.")
    refunds: list[Refund]

    @strawberry.field(
        description="医保结算单: the settlement statement as a PDF (base64) under the hospital's SM2 e-seal, for a "
        "payment settled with insurance; null otherwise. Check it at POST /documents/settlement-statements/verify."
    )
    async def settlement_statement_pdf(self, info: Ctx) -> str | None:
        if self.insurance is None or self.insurance.status != "PAID" or self.status != PaymentOrderStatus.SETTLED:
            return None
        pdf = await statements.statement_pdf(
            info.context.deps, account_id=info.context.viewer.account_id or 0, order_no=self.order_no
        )
        return base64.b64encode(pdf).decode()

    @staticmethod
    def of(x: o.Order, refunds: list[r.Refund]) -> PaymentOrder:
        return PaymentOrder(
            order_no=x.order_no, purpose=PaymentPurpose(x.purpose), channel=PaymentChannel(x.channel),
            description=x.description, amount=Money.of(x.total_fen), self_pay=Money.of(x.self_pay_fen),
            insurance=InsuranceShare(
                fund=Money.of(x.fund_fen), personal_account=Money.of(x.personal_account_fen),
                family_account=Money.of(x.family_account_fen), status=x.insurance_status,
            ) if x.insurance_status else None,
            refunded=Money.of(x.refunded_fen),
            status=PaymentOrderStatus(x.status), patient_id=strawberry.ID(str(x.patient_id)), created_at=x.created_at,
            expires_at=x.expires_at, paid_at=x.paid_at, settled_at=x.settled_at, receipt_no=x.his_receipt_no,
            invoice_url=x.invoice_url, refunds=[Refund.of(y) for y in refunds],
        )


async def orders_of(info: Ctx, found: list[o.Order]) -> list[PaymentOrder]:
    grouped = await r.of_orders(info.context.deps, [x.order_no for x in found]) if found else []
    return [PaymentOrder.of(x, refunds) for x, refunds in zip(found, grouped, strict=True)]


@strawberry.type(description="wx.requestPayment's arguments, signed by the BFF with the merchant key.")
class WeChatPayParameters:
    app_id: str
    time_stamp: str
    nonce_str: str
    package: str
    sign_type: str
    pay_sign: str


@strawberry.type(description="wx.requestMedicalInsurancePay's arguments: the order and its cash part's paySign.")
class WeChatMedicalInsuranceParameters:
    mix_trade_no: str
    time_stamp: str | None
    nonce_str: str | None
    package: str | None
    sign_type: str | None
    pay_sign: str | None


@strawberry.type(description="my.tradePay's argument.")
class AlipayParameters:
    trade_no: str


@strawberry.type(description="Hand these to the app's pay call, then call confirmPayment (or wait for the status).")
class PaymentStarted:
    order: PaymentOrder
    wechat_pay: WeChatPayParameters | None
    wechat_medical_insurance: WeChatMedicalInsuranceParameters | None
    alipay: AlipayParameters | None
    link: str = strawberry.field(description="The order's payment page, for someone else to open or scan.")
    qr_content: str | None = strawberry.field(
        description="At a kiosk: the channel's own code to show (WeChat's code_url, Alipay's qr_code); null otherwise."
    )

    @strawberry.field(
        description="What to show as a QR code (qrContent at a kiosk, else the link): a PNG, base64, drawn when asked."
    )
    def qr_code_png(self) -> str:
        content = self.qr_content or self.link
        return base64.b64encode(payment_qr_png(content)).decode() if content else ""


def payment_started(payments: o.Payments, result: outpatient.Started) -> PaymentStarted:
    p = result.client
    link = payments.link(result.order.order_no)
    return PaymentStarted(
        order=PaymentOrder.of(result.order, []),
        link=link,
        qr_content=p.get("qrCode"),
        wechat_pay=WeChatPayParameters(
            app_id=p["appId"], time_stamp=p["timeStamp"], nonce_str=p["nonceStr"], package=p["package"],
            sign_type=p["signType"], pay_sign=p["paySign"],
        ) if "paySign" in p and "mixTradeNo" not in p else None,
        wechat_medical_insurance=WeChatMedicalInsuranceParameters(
            mix_trade_no=p["mixTradeNo"], time_stamp=p.get("timeStamp"), nonce_str=p.get("nonceStr"),
            package=p.get("package"), sign_type=p.get("signType"), pay_sign=p.get("paySign"),
        ) if "mixTradeNo" in p else None,
        alipay=AlipayParameters(trade_no=p["tradeNO"]) if "tradeNO" in p else None,
    )


@strawberry.input
class PayRegistrationInput:
    registration_id: strawberry.ID
    idempotency_key: str = strawberry.field(description="A new UUID per payment attempt; resend it on retry.")


@strawberry.input
class PayBillsInput:
    bill_ids: list[strawberry.ID] = strawberry.field(description="One patient's bills, paid together (1-50).")
    idempotency_key: str = strawberry.field(description="A new UUID per payment attempt; resend it on retry.")


@strawberry.input
class PayBillsWithInsuranceInput:
    bill_ids: list[strawberry.ID] = strawberry.field(description="One patient's bills, paid together (1-50).")
    auth_code: str = strawberry.field(description="The authCode the insurance authorization returned to the app.")
    idempotency_key: str = strawberry.field(description="A new UUID per payment attempt; resend it on retry.")


@strawberry.input
class ConfirmPaymentInput:
    order_no: str


@strawberry.input
class CancelPaymentInput:
    order_no: str


@strawberry.input
class TopUpDepositInput:
    patient_id: strawberry.ID
    kind: DepositKind
    admission_id: strawberry.ID | None = None
    amount_fen: int = strawberry.field(description="In fen: 10000 is 100.00 yuan.")
    idempotency_key: str = strawberry.field(description="A new UUID per top-up; resend it on retry.")


@strawberry.type(description="预交金: a deposit account at the hospital and what is owed (欠费).")
class DepositAccount:
    patient_id: strawberry.ID
    kind: DepositKind
    admission_id: strawberry.ID | None
    balance: Money
    arrears: Money = strawberry.field(description="Owed to the hospital; a top-up clears it first.")

    @staticmethod
    def of(a: deposits.Account) -> DepositAccount:
        return DepositAccount(
            patient_id=strawberry.ID(str(a.patient_id)), kind=DepositKind(a.kind),
            admission_id=strawberry.ID(a.admission_id) if a.admission_id else None, balance=Money.of(a.balance_fen),
            arrears=Money.of(a.arrears_fen),
        )


_StartErrors = (
    NotFoundError | NotAllowedError | OrderClosedError | InvalidInputError | IdempotencyConflictError
    | MedicalCardRequiredError | InsuranceNotAuthorizedError | InsufficientPersonalAccountError
    | ServiceUnavailableError
)
PayPayload = Annotated[PaymentStarted | _StartErrors, strawberry.union("PayPayload")]
ConfirmPaymentPayload = Annotated[
    PaymentOrder | NotFoundError | NotAllowedError | ServiceUnavailableError, strawberry.union("ConfirmPaymentPayload")
]


async def pending_bills(info: Ctx, patient_id: strawberry.ID | None = None) -> list[PendingBill]:
    found = await outpatient.pending_bills(
        info.context.deps, account_id=info.context.viewer.account_id or 0,
        patient_id=parse_id(patient_id) if patient_id is not None else None,
    )
    return [PendingBill.of(bill, pid) for bill, pid in found]


async def insurance_authorize_url(info: Ctx, return_url: str, state: str) -> str:
    """The insurance platform's authorization page; it comes back to ``returnUrl`` with ``authCode`` and ``state``."""
    return insured.authorize_url(info.context.deps, return_url=return_url, state=state)


async def deposit_accounts(info: Ctx, patient_id: strawberry.ID) -> list[DepositAccount]:
    found = await deposits.accounts(
        info.context.deps, account_id=info.context.viewer.account_id or 0, patient_id=parse_id(patient_id)
    )
    return [DepositAccount.of(a) for a in found]


async def payments(info: Ctx, first: int = 20) -> list[PaymentOrder]:
    found = await o.orders_of(info.context.deps, info.context.viewer.account_id or 0, limit=max(1, min(first, 100)))
    return await orders_of(info, found)


async def payment(info: Ctx, order_no: str) -> PaymentOrder | None:
    found = await o.load(info.context.deps, order_no)
    if found is None or found.account_id != info.context.viewer.account_id:
        return None
    return (await orders_of(info, [found]))[0]


@strawberry.type
class PaymentsMutation:
    @strawberry.mutation(permission_classes=[IsPatient], description="挂号缴费: pay a registration's fee in this app.")
    async def pay_registration(self, info: Ctx, input: PayRegistrationInput) -> PayPayload:
        viewer = info.context.viewer
        try:
            started = await outpatient.pay_registration(
                info.context.deps, account_id=viewer.account_id or 0, session_channel=viewer.channel,
                registration_id=str(input.registration_id), idempotency_key=input.idempotency_key,
            )
        except DomainError as exc:
            return user_error(exc)
        return payment_started(info.context.deps.payments, started)  # type: ignore[arg-type]

    @strawberry.mutation(permission_classes=[IsPatient], description="门诊缴费: bills paid as one.")
    async def pay_bills(self, info: Ctx, input: PayBillsInput) -> PayPayload:
        viewer = info.context.viewer
        try:
            started = await outpatient.pay_bills(
                info.context.deps, account_id=viewer.account_id or 0, session_channel=viewer.channel,
                bill_ids=[str(i) for i in input.bill_ids], idempotency_key=input.idempotency_key,
            )
        except DomainError as exc:
            return user_error(exc)
        return payment_started(info.context.deps.payments, started)  # type: ignore[arg-type]

    @strawberry.mutation(
        permission_classes=[IsPatient],
        description="After the app's pay call returned: the BFF asks the channel (never trusting the app) and "
        "returns the order as it now stands.",
    )
    async def confirm_payment(self, info: Ctx, input: ConfirmPaymentInput) -> ConfirmPaymentPayload:
        try:
            order = await outpatient.confirm_payment(
                info.context.deps, account_id=info.context.viewer.account_id or 0, order_no=input.order_no
            )
        except DomainError as exc:
            return user_error(exc)
        return (await orders_of(info, [order]))[0]

    @strawberry.mutation(
        permission_classes=[IsPatient],
        description="预交金充值: top up a deposit (arrears are cleared first); pay here, or share the link/QR code.",
    )
    async def top_up_deposit(self, info: Ctx, input: TopUpDepositInput) -> PayPayload:
        viewer = info.context.viewer
        try:
            started = await deposits.top_up(
                info.context.deps, account_id=viewer.account_id or 0, session_channel=viewer.channel,
                patient_id=parse_id(input.patient_id), kind=input.kind.value,
                admission_id=str(input.admission_id) if input.admission_id else None, amount_fen=input.amount_fen,
                idempotency_key=input.idempotency_key,
            )
        except DomainError as exc:
            return user_error(exc)
        return payment_started(info.context.deps.payments, started)  # type: ignore[arg-type]

    @strawberry.mutation(
        permission_classes=[IsPatient], description="Give up an unpaid payment: it can no longer be paid."
    )
    async def cancel_payment(self, info: Ctx, input: CancelPaymentInput) -> ConfirmPaymentPayload:
        try:
            order = await outpatient.cancel_payment(
                info.context.deps, account_id=info.context.viewer.account_id or 0, order_no=input.order_no
            )
        except DomainError as exc:
            return user_error(exc)
        return (await orders_of(info, [order]))[0]

    @strawberry.mutation(
        permission_classes=[IsPatient],
        description="医保缴费: pending bills paid by the medical insurance (fund, personal and family accounts), "
        "the rest in cash in the same order.",
    )
    async def pay_bills_with_insurance(self, info: Ctx, input: PayBillsWithInsuranceInput) -> PayPayload:
        viewer = info.context.viewer
        try:
            started = await insured.pay_bills(
                info.context.deps, account_id=viewer.account_id or 0, session_channel=viewer.channel,
                bill_ids=[str(i) for i in input.bill_ids], auth_code=input.auth_code,
                idempotency_key=input.idempotency_key,
            )
        except DomainError as exc:
            return user_error(exc)
        return payment_started(info.context.deps.payments, started)  # type: ignore[arg-type]
