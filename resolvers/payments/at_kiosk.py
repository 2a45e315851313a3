"""Paying at a kiosk: the identified patient's pending bills, paid by scanning the QR code the kiosk
shows (WeChat Pay Native; Alipay's precreated code when enabled). The order belongs to the device's
account (the kiosk follows it to the end); the HIS records it against the patient on the ticket.
"""

from __future__ import annotations

from collections.abc import Sequence

from datasources.his import billing as b
from resolvers import idempotency
from resolvers.deps import Deps
from resolvers.errors import InvalidInput, NotAllowed, NotFound, in_service
from resolvers.kiosk import open_ticket, require_record
from resolvers.payments import orders as o
from resolvers.payments.outpatient import Started, payments_of, started_of

QR_CHANNELS = ("WECHAT_NATIVE", "ALIPAY_QR")


async def pay_bills(
    deps: Deps, *, device_account_id: int, token: str, bill_ids: Sequence[str], channel_code: str,
    idempotency_key: str,
) -> Started:
    payments = payments_of(deps)
    if channel_code not in QR_CHANNELS:
        raise InvalidInput("channel", "A kiosk takes WECHAT_NATIVE or ALIPAY_QR.")
    wanted = sorted(set(bill_ids))
    if not wanted or len(wanted) > 50:
        raise InvalidInput("billIds", "Choose between 1 and 50 bills to pay.")
    ticket = open_ticket(deps, token, device_account_id=device_account_id)
    his_patient_id, _ = require_record(ticket)
    billing = deps.sources.billing
    if billing is None:
        raise NotAllowed("Paying bills is not enabled at this hospital.", "CHANNEL_NOT_ENABLED")

    async def run() -> str:
        bills = await in_service(billing.bills_by_ids(wanted))
        if len(bills) != len(wanted) or any(bill.his_patient_id != his_patient_id for bill in bills):
            raise NotFound("One of these bills is not this patient's.")
        if any(bill.status != b.UNPAID for bill in bills):
            raise NotAllowed("One of these bills is already paid or was withdrawn; refresh the list.", "NOT_PAYABLE")
        payable = o.Payable(
            purpose=o.BILLS, subject={"billIds": wanted}, open_subject="BILLS:" + ",".join(wanted)[:150],
            patient_id=0, his_patient_id=his_patient_id,
            description=("自助机缴费 " + "、".join(bill.title for bill in bills))[:120],
            total_fen=sum(bill.total_fen for bill in bills), pay_by=deps.clock.now() + payments.order_timeout,
        )
        order = await o.start(deps, payments, account_id=device_account_id, payable=payable,
                              channel_code=channel_code, payer="")
        return order.order_no

    order_no = await idempotency.once(
        deps.db, deps.clock, account_id=device_account_id, scope="kioskPayBills", key=idempotency_key,
        request={"billIds": wanted, "channel": channel_code, "patient": his_patient_id}, run=run,
    )
    return await started_of(deps, payments, order_no)


async def order(deps: Deps, *, device_account_id: int, order_no: str) -> o.Order:
    """One of this device's orders, moved on if the channel has news (the kiosk polls while the code shows)."""
    await o.owned(deps, account_id=device_account_id, order_no=order_no)
    return await o.confirm(deps, payments_of(deps), order_no)
