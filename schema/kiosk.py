"""Kiosks and bedside terminals: the device identifies the patient per transaction and works with
the ticket it gets. Only signed requests of apps registered as DEVICE reach these fields."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import strawberry

from resolvers import kiosk
from resolvers.errors import DomainError, InvalidInput
from resolvers.payments import at_kiosk
from resolvers.privacy import mask_card_number, mask_name
from schema.common import (
    Ctx,
    IdentityNotVerifiedError,
    InvalidInputError,
    NotAllowedError,
    ServiceUnavailableError,
)
from schema.enums import KioskPaymentChannel
from schema.errors import user_error
from schema.payments import PaymentOrder, PayPayload, PendingBill, orders_of, payment_started
from schema.permissions import IsDevice


@strawberry.type(description="A hospital card of the identified patient, masked.")
class KioskCard:
    card_no: str
    card_type: str


@strawberry.type(
    description="The patient is identified: send `ticket` with each following step (it ends at `expiresAt`, "
    "and only this device can use it). Without a record, create one first (kioskCreateRecord)."
)
class PatientIdentified:
    ticket: str
    expires_at: dt.datetime
    name: str = strawberry.field(description="Masked, e.g. 张*: the screen may show it to others.")
    has_record: bool
    cards: list[KioskCard]

    @staticmethod
    def of(found: kiosk.Identified) -> PatientIdentified:
        return PatientIdentified(
            ticket=found.token, expires_at=found.ticket.expires_at, name=mask_name(found.ticket.name),
            has_record=found.ticket.his_patient_id is not None,
            cards=[KioskCard(card_no=mask_card_number(c.card_no), card_type=c.card_type) for c in found.cards],
        )


@strawberry.input(description="Read from the ID card's chip by the device's certified reader.")
class IdCardInput:
    name: str
    number: str


@strawberry.input(description="Typed by the patient, with the camera's live capture (its token).")
class FaceInput:
    name: str
    number: str
    capture_token: str


@strawberry.input(description="Exactly one way of identifying the patient.")
class IdentifyPatientInput:
    id_card: IdCardInput | None = None
    face: FaceInput | None = None


@strawberry.input
class KioskCreateRecordInput:
    ticket: str
    phone: str
    address: str | None = None


@strawberry.input
class KioskPayBillsInput:
    ticket: str
    bill_ids: list[strawberry.ID]
    channel: KioskPaymentChannel
    idempotency_key: str = strawberry.field(description="A new UUID per payment attempt; resend it on retry.")


@strawberry.type
class KioskBills:
    bills: list[PendingBill]


_Errors = IdentityNotVerifiedError | InvalidInputError | NotAllowedError | ServiceUnavailableError
IdentifyPatientPayload = Annotated[PatientIdentified | _Errors, strawberry.union("IdentifyPatientPayload")]
KioskBillsPayload = Annotated[KioskBills | _Errors, strawberry.union("KioskBillsPayload")]


@strawberry.type
class KioskQuery:
    @strawberry.field(
        permission_classes=[IsDevice],
        description="One of this device's payments, as it stands now (poll it while the QR code shows).",
    )
    async def kiosk_payment(self, info: Ctx, order_no: str) -> PaymentOrder | None:
        try:
            found = await at_kiosk.order(
                info.context.deps, device_account_id=info.context.viewer.account_id or 0, order_no=order_no
            )
        except DomainError:
            return None
        return (await orders_of(info, [found]))[0]

    @strawberry.field(permission_classes=[IsDevice], description="待缴费 of the identified patient.")
    async def kiosk_pending_bills(self, info: Ctx, ticket: str) -> KioskBillsPayload:
        try:
            bills = await kiosk.pending_bills(
                info.context.deps, device_account_id=info.context.viewer.account_id or 0, token=ticket
            )
        except DomainError as exc:
            return user_error(exc)
        return KioskBills(bills=[PendingBill.of(bill, None) for bill in bills])


@strawberry.type
class KioskMutation:
    @strawberry.mutation(permission_classes=[IsDevice], description="Identify the patient in front of the device.")
    async def identify_patient(self, info: Ctx, input: IdentifyPatientInput) -> IdentifyPatientPayload:
        deps, device = info.context.deps, info.context.viewer.account_id or 0
        try:
            if (input.id_card is None) == (input.face is None):
                raise InvalidInput("idCard", "Send exactly one of idCard or face.")
            if input.id_card is not None:
                found = await kiosk.identify_by_id_card(
                    deps, device_account_id=device, name=input.id_card.name, number=input.id_card.number
                )
            else:
                assert input.face is not None
                found = await kiosk.identify_by_face(
                    deps, device_account_id=device, name=input.face.name, number=input.face.number,
                    capture_token=input.face.capture_token,
                )
        except DomainError as exc:
            return user_error(exc)
        return PatientIdentified.of(found)

    @strawberry.mutation(
        permission_classes=[IsDevice],
        description="自助缴费: the identified patient's bills, paid by scanning the code the kiosk shows (qrContent).",
    )
    async def kiosk_pay_bills(self, info: Ctx, input: KioskPayBillsInput) -> PayPayload:
        try:
            started = await at_kiosk.pay_bills(
                info.context.deps, device_account_id=info.context.viewer.account_id or 0, token=input.ticket,
                bill_ids=[str(i) for i in input.bill_ids], channel_code=input.channel.value,
                idempotency_key=input.idempotency_key,
            )
        except DomainError as exc:
            return user_error(exc)
        return payment_started(info.context.deps.payments, started)  # type: ignore[arg-type]

    @strawberry.mutation(
        permission_classes=[IsDevice], description="建档: a hospital record for the identified patient who has none."
    )
    async def kiosk_create_record(self, info: Ctx, input: KioskCreateRecordInput) -> IdentifyPatientPayload:
        try:
            found = await kiosk.create_record(
                info.context.deps, device_account_id=info.context.viewer.account_id or 0, token=input.ticket,
                phone=input.phone, address=input.address,
            )
        except DomainError as exc:
            return user_error(exc)
        return PatientIdentified.of(found)
