"""Paying bills with medical insurance (医保移动支付 2.0): the pooled fund, the personal account and the
family account pay their shares, and the rest (own pay) is paid in the same order through the
patient's app: for WeChat, a medical-insurance order (``/v3/med-ins/orders``, CASH_AND_INSURANCE)
carrying the platform's ``payOrdId`` and the ``payAuthNo``, with a JSAPI prepay for the cash.

    authCode ─▶ payAuthNo (identity checked against the patient) ─▶ 6201 upload: the split
      ├─ own pay 0:  6202 now ─▶ PAID ─▶ HIS
      └─ own pay >0: the channel's order for the cash ─▶ paid ─▶ 6202 ─▶ PAID ─▶ HIS
                                         6202 refused ─▶ the cash refunded in full, the upload withdrawn

The platform splits, never the BFF: the shares come back from 6201 and are what the HIS records.
The payToken of 6201 is sealed at rest like personal data.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from sqlalchemy import update
from sqlmodel import col

from datasources.errors import SourceRejected, SourceUnavailable
from datasources.his import billing as b
from datasources.mobile_insurance import contract as mi
from datasources.store.models import PaymentOrder
from datasources.wechatpay import medins_contract as wm
from resolvers import idempotency, patients
from resolvers.deps import Deps
from resolvers.errors import (
    InsufficientPersonalAccount,
    InsuranceNotAuthorized,
    InvalidInput,
    NotAllowed,
    NotFound,
    ServiceUnavailable,
)
from resolvers.payments import orders as o
from resolvers.payments.outpatient import Started, bills_of, payer, payments_of, started_of

log = logging.getLogger(__name__)

TOKEN_CONTEXT = "payment_order.insurance_token"  # noqa: S105 - the encryption context's name, not a secret
# Bill categories as the platform's fee categories (medChrgitmType): 09 西药费, 04 化验费, 03 检查费, 05 治疗费.
FEE_CATEGORY = {b.PRESCRIPTION: "09", b.LAB: "04", b.EXAM: "03", b.TREATMENT: "05"}
UPLOADED, PAID, REFUNDED, CANCELLED = mi.UPLOADED, mi.PAID, mi.REFUNDED, mi.CANCELLED
INSURANCE = "INSURANCE"  # the order's channel when there is nothing to pay in cash
WECHAT_MED_INS = "WECHAT_MED_INS"
PLATFORM_DOWN = "The medical insurance platform is not answering; please try again shortly."


def _platform(deps: Deps) -> mi.MobileInsurance:
    if deps.sources.mobile_insurance is None:
        raise NotAllowed("Paying with medical insurance is not enabled at this hospital.", "CHANNEL_NOT_ENABLED")
    return deps.sources.mobile_insurance


def authorize_url(deps: Deps, *, return_url: str, state: str) -> str:
    if not return_url.startswith(("https://", "http://")) or len(return_url) > 512 or len(state) > 64:
        raise InvalidInput("returnUrl", "Send the app's page to come back to (http(s), at most 512 characters).")
    return _platform(deps).authorize_url(return_url, state)


async def pay_bills(
    deps: Deps, *, account_id: int, session_channel: str | None, bill_ids: Sequence[str], auth_code: str,
    idempotency_key: str,
) -> Started:
    payments = payments_of(deps)
    platform = _platform(deps)
    wanted = sorted(set(bill_ids))
    if not wanted or len(wanted) > 50:
        raise InvalidInput("billIds", "Choose between 1 and 50 bills to pay.")
    if not auth_code or len(auth_code) > 128:
        raise InvalidInput("authCode", "Authorize medical insurance in the app first, then send its authCode.")

    async def run() -> str:
        found = await bills_of(deps, account_id=account_id, bill_ids=wanted)
        if len(found) != len(wanted):
            raise NotFound("One of these bills does not exist on this account.")
        if len({pid for _, pid in found}) != 1 or len({bill.his_patient_id for bill, _ in found}) != 1:
            raise InvalidInput("billIds", "Pay one patient's bills at a time.")
        bills = [bill for bill, _ in found]
        if any(bill.status != b.UNPAID for bill in bills):
            raise NotAllowed("One of these bills is already paid or was withdrawn; refresh the list.", "NOT_PAYABLE")
        patient = await patients.owned(deps, account_id=account_id, patient_id=found[0][1])
        authorization = await _authorization(platform, auth_code, patient)
        now = deps.clock.now()
        order_no = o.new_number("P", now)
        items = tuple(
            mi.FeeItem(
                seq=f"{n}", code=item.insurance_code or item.code, name=item.name,
                category=FEE_CATEGORY.get(bill.category, "14"), amount_fen=item.amount_fen,
            )
            for n, (bill, item) in enumerate(((bill, item) for bill in bills for item in bill.items), start=1)
        )
        total = sum(bill.total_fen for bill in bills)
        if sum(i.amount_fen for i in items) != total:
            raise ServiceUnavailable("A bill's items do not add up to its total; please pay at the cashier.")
        try:
            uploaded = await platform.upload_fees(
                mi.FeeUpload(
                    pay_auth_no=authorization.pay_auth_no, org_code=payments.institution.org_code,
                    med_org_ord=order_no, name=patient.name, id_no=patient.document_number, total_fen=total,
                    items=items,
                )
            )
        except SourceRejected as exc:
            raise _refusal(exc) from exc
        except SourceUnavailable as exc:
            raise ServiceUnavailable(PLATFORM_DOWN) from exc
        split = uploaded.order.split
        channel_code, who = INSURANCE, ""
        if split.own_pay_fen > 0:
            channel_code, who = await payer(deps, account_id=account_id, session_channel=session_channel)
            if channel_code == "WECHAT_PAY":
                channel_code = WECHAT_MED_INS
        titles = "、".join(bill.title for bill in bills)
        row = PaymentOrder(
            order_no=order_no, account_id=account_id, patient_id=found[0][1], his_patient_id=bills[0].his_patient_id,
            purpose=o.BILLS, subject=json.dumps({"billIds": wanted}, sort_keys=True),
            open_subject="BILLS:" + ",".join(wanted)[:150], channel=channel_code,
            description=f"医保缴费 {titles}"[:120], total_fen=total, self_pay_fen=split.own_pay_fen,
            insurance_fen=split.total_fen - split.own_pay_fen, fund_fen=split.fund_fen,
            personal_account_fen=split.personal_account_fen, family_account_fen=split.family_account_fen,
            insurance_order=uploaded.order.pay_ord_id, insurance_status=UPLOADED,
            insurance_token_enc=deps.cipher.encrypt(uploaded.pay_token, context=TOKEN_CONTEXT),
            status=o.CREATED, created_at=now, expires_at=now + payments.order_timeout, updated_at=now,
        )
        try:
            await o.insert(deps, row)
        except o.AlreadyOpen:
            await _withdraw(platform, uploaded.order.pay_ord_id, uploaded.pay_token)
            raise NotAllowed("A payment for these bills is under way; finish or cancel it.", "ORDER_OPEN") from None
        if split.own_pay_fen == 0:
            await o.move(deps, order_no, (o.CREATED,), status=o.PAID, open_subject=None, paid_at=now)
            order = await o.load(deps, order_no)
            assert order is not None
            await settle_insurance(deps, payments, order, refund_cash=False)
            order = await o.load(deps, order_no)
            assert order is not None
            if order.problem == mi.INSUFFICIENT_PERSONAL_ACCOUNT:
                raise InsufficientPersonalAccount(
                    "Your personal account no longer covers its share; pay again to have it recalculated."
                )
            if order.status == o.PAID:
                await o.write_back(deps, payments, order)
            return order_no
        await _open_cash(deps, payments, row, authorization, patient, who)
        return order_no

    order_no = await idempotency.once(
        deps.db, deps.clock, account_id=account_id, scope="payBillsWithInsurance", key=idempotency_key,
        request={"billIds": wanted, "authCode": auth_code}, run=run,
    )
    return await started_of(deps, payments, order_no)


async def _authorization(
    platform: mi.MobileInsurance, auth_code: str, patient: patients.PatientView
) -> mi.Authorization:
    try:
        authorization = await platform.authorization(auth_code)
    except SourceRejected as exc:
        raise InsuranceNotAuthorized(
            "The insurance authorization is invalid or has expired; authorize again in the app."
        ) from exc
    except SourceUnavailable as exc:
        raise ServiceUnavailable(PLATFORM_DOWN) from exc
    if authorization.id_no.upper() != patient.document_number.upper() or authorization.name != patient.name:
        raise InsuranceNotAuthorized("The insurance authorization belongs to someone else than this patient.")
    return authorization


def _refusal(exc: SourceRejected) -> Exception:
    if exc.code in (mi.PAY_AUTH_UNKNOWN, mi.PAY_AUTH_EXPIRED, mi.PAY_AUTH_USED, mi.IDENTITY_MISMATCH):
        return InsuranceNotAuthorized("The insurance authorization can no longer be used; authorize again in the app.")
    if exc.code == mi.INSUFFICIENT_PERSONAL_ACCOUNT:
        return InsufficientPersonalAccount("Your personal account does not cover its share.")
    log.warning("the insurance platform refused an upload: %s", exc.code)
    return ServiceUnavailable("The insurance platform refused these fees; please pay at the cashier.")


async def _withdraw(platform: mi.MobileInsurance, pay_ord_id: str, pay_token: str) -> None:
    try:
        await platform.cancel_upload(pay_ord_id=pay_ord_id, pay_token=pay_token, reason="payment not started")
    except (SourceRejected, SourceUnavailable) as exc:
        log.info("could not withdraw upload %s: %s", pay_ord_id, type(exc).__name__)


async def _open_cash(
    deps: Deps, payments: o.Payments, row: PaymentOrder, authorization: mi.Authorization,
    patient: patients.PatientView, payer_id: str,
) -> None:
    """The own-pay part at the channel; for WeChat, inside a medical-insurance order."""
    channel = payments.channel(row.channel)
    try:
        if row.channel == WECHAT_MED_INS:
            wechat = deps.sources.wechatpay
            med_ins = deps.sources.wechat_med_ins
            assert wechat is not None and med_ins is not None
            prepay = await wechat.prepay_jsapi(
                row.order_no, row.description, row.self_pay_fen, payer_id, payments.notify_url("WECHAT_PAY"),
                row.expires_at,
            )
            created = await med_ins.create_med_ins_order(
                wm.MedInsOrderRequest(
                    mix_pay_type="CASH_AND_INSURANCE", order_type="DIAG_PAY", openid=payer_id,
                    payer=wm.Person.of(patient.name, patient.document_number), out_trade_no=row.order_no,
                    serial_no=row.order_no, city_id=authorization.insurance_area,
                    med_inst_name=payments.institution.name, med_inst_no=payments.institution.org_code,
                    total_fee=row.total_fen, callback_url=payments.notify_url(WECHAT_MED_INS),
                    med_ins_gov_fee=row.fund_fen, med_ins_self_fee=row.personal_account_fen + row.family_account_fen,
                    med_ins_cash_fee=row.self_pay_fen, wechat_pay_cash_fee=row.self_pay_fen,
                    pay_order_id=row.insurance_order, pay_auth_no=authorization.pay_auth_no,
                    med_ins_order_create_time=row.created_at, prepay_id=prepay.prepay_id,
                )
            )
            ref = f"{created.mix_trade_no}:{prepay.prepay_id}"
        else:
            ref = await channel.open(
                order_no=row.order_no, description=row.description, amount_fen=row.self_pay_fen, payer=payer_id,
                notify_url=payments.notify_url(row.channel), expires_at=row.expires_at,
            )
    except (SourceRejected, SourceUnavailable) as exc:
        await o.close_everywhere(deps, channel, row.order_no)
        await cancel_upload(deps, row.order_no)
        if isinstance(exc, SourceRejected):
            log.warning("%s refused to open order %s: %s", row.channel, row.order_no, exc.code)
        raise ServiceUnavailable(o.CHANNEL_DOWN) from exc
    await o.move(deps, row.order_no, (o.CREATED,), status=o.PAYING, channel_ref=ref)


async def _token(deps: Deps, order_no: str) -> tuple[str, str] | None:
    async with deps.db.reading() as s:
        row = (
            await s.execute(o.select_order(order_no))
        ).scalar_one_or_none()
    if row is None or row.insurance_order is None or row.insurance_token_enc is None:
        return None
    return row.insurance_order, deps.cipher.decrypt(row.insurance_token_enc, context=TOKEN_CONTEXT)


async def cancel_upload(deps: Deps, order_no: str) -> None:
    found = await _token(deps, order_no)
    if found is None or deps.sources.mobile_insurance is None:
        return
    await _withdraw(deps.sources.mobile_insurance, *found)
    await _set_insurance(deps, order_no, (UPLOADED,), CANCELLED)


async def _set_insurance(deps: Deps, order_no: str, from_: tuple[str, ...], to: str) -> bool:
    async with deps.db.writing() as s:
        result = await s.execute(
            update(PaymentOrder)
            .where(col(PaymentOrder.order_no) == order_no, col(PaymentOrder.insurance_status).in_(from_))
            .values(insurance_status=to, updated_at=deps.clock.now())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


async def settle_insurance(deps: Deps, payments: o.Payments, order: o.Order, *, refund_cash: bool = True) -> None:
    """6202 for a PAID order whose insurance part is only uploaded. Refused (the balance fell since
    the upload), the upload is withdrawn and the cash paid so far goes back in full."""
    from resolvers.payments import refunds

    found = await _token(deps, order.order_no)
    platform = deps.sources.mobile_insurance
    if found is None or platform is None:
        return
    pay_ord_id, token = found
    try:
        await platform.place_order(pay_ord_id=pay_ord_id, pay_token=token)
    except SourceUnavailable:
        return  # the sweeper asks again (a repeat is answered ALREADY_PAID, read below)
    except SourceRejected as exc:
        if exc.code == mi.ALREADY_PAID:
            state = await platform.query(pay_ord_id=pay_ord_id)
            if state.status in (PAID, REFUNDED):
                await _set_insurance(deps, order.order_no, (UPLOADED,), PAID)
                return
        log.warning("6202 refused for order %s: %s", order.order_no, exc.code)
        await _withdraw(platform, pay_ord_id, token)
        await _set_insurance(deps, order.order_no, (UPLOADED,), CANCELLED)
        if await o.move(deps, order.order_no, (o.PAID,), status=o.REFUNDING if order.self_pay_fen else o.CLOSED,
                        problem=exc.code[:64], closed_at=deps.clock.now()):
            if refund_cash and order.self_pay_fen > 0:
                moved = await o.load(deps, order.order_no)
                assert moved is not None
                await refunds.request(
                    deps, payments, moved, amount_fen=moved.self_pay_fen,
                    reason="医保个人账户余额不足 The insurance could not pay its share.",
                    cause=refunds.NOT_PAYABLE_AT_HIS,
                )
        return
    await _set_insurance(deps, order.order_no, (UPLOADED,), PAID)


async def refund_insurance(deps: Deps, order: o.Order, refund_no: str, reason: str) -> bool:
    """6203: the whole insurance part back to the fund and accounts; WeChat Pay is told for its order."""
    found = await _token(deps, order.order_no)
    platform = deps.sources.mobile_insurance
    if found is None or platform is None or order.insurance_fen == 0:
        return True
    try:
        back = await platform.refund(pay_ord_id=found[0], refund_sn=refund_no, reason=reason[:64])
    except SourceUnavailable:
        return False
    except SourceRejected as exc:
        if exc.code != mi.ALREADY_REFUNDED:
            raise
    else:
        if order.channel == WECHAT_MED_INS and deps.sources.wechat_med_ins is not None and order.channel_ref:
            await deps.sources.wechat_med_ins.notify_med_ins_refund(
                order.channel_ref.split(":")[0],
                wm.MedInsRefund(
                    out_refund_no=refund_no, med_refund_total_fee=back.fund_fen + back.personal_account_fen
                    + back.family_account_fen, med_refund_gov_fee=back.fund_fen,
                    med_refund_self_fee=back.personal_account_fen + back.family_account_fen, med_refund_other_fee=0,
                    refund_time=deps.clock.now(),
                ),
            )
    await _set_insurance(deps, order.order_no, (PAID,), REFUNDED)
    return True
