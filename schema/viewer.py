"""The viewer: everything role-shaped hangs off `me`."""

from __future__ import annotations

import datetime as dt

import strawberry

from datasources.clock import local_date
from datasources.his import contract as c
from resolvers import medical_cards, registration
from resolvers.errors import NotFound, in_service
from schema.catalog import Schedule
from schema.common import Connection, Ctx, Edge, PageInfo
from schema.identity import Account
from schema.patients import HospitalCard, Patient, hospital_card, parse_id, patients_of
from schema.payments import DepositAccount, PaymentOrder, PendingBill
from schema.payments import deposit_accounts as deposit_accounts_field
from schema.payments import insurance_authorize_url as insurance_authorize_url_field
from schema.payments import payment as payment_field
from schema.payments import payments as payments_field
from schema.payments import pending_bills as pending_bills_field
from schema.permissions import IsAuthenticated, IsDoctor, IsPatient
from schema.registration import QueueState, Registration, RegistrationFilter, registrations_of

ACTIVE = ("BOOKED", "CHECKED_IN", "CALLED")


@strawberry.type
class Me:
    @strawberry.field(permission_classes=[IsAuthenticated])
    def account(self, info: Ctx) -> Account:
        return Account.of(info.context.viewer)

    @strawberry.field(permission_classes=[IsPatient], description="The patients this account manages.")
    async def patients(self, info: Ctx) -> list[Patient]:
        mine = await info.context.loaders.patients_by_account.load(info.context.viewer.account_id or 0)
        return await patients_of(info, mine)

    @strawberry.field(permission_classes=[IsPatient])
    async def patient(self, info: Ctx, id: strawberry.ID) -> Patient | None:
        mine = await info.context.loaders.patients_by_account.load(info.context.viewer.account_id or 0)
        found = next((p for p in mine if str(p.id) == id), None)
        return (await patients_of(info, [found]))[0] if found else None

    @strawberry.field(
        permission_classes=[IsPatient],
        description="Cards the hospital holds under the patient's name and document number, to bind one.",
    )
    async def hospital_cards(self, info: Ctx, patient_id: strawberry.ID) -> list[HospitalCard]:
        deps = info.context.deps
        found = await medical_cards.find_hospital_cards(
            deps,
            account_id=info.context.viewer.account_id or 0,
            patient_id=parse_id(patient_id),
        )
        return [hospital_card(deps.cipher, card) for card in found]

    @strawberry.field(permission_classes=[IsPatient], description="挂号记录, newest first (soonest first if upcoming).")
    async def registrations(
        self, info: Ctx, filter: RegistrationFilter | None = None, first: int = 20, after: str | None = None
    ) -> Connection[Registration]:
        flt = filter or RegistrationFilter()
        first = max(1, min(first, 100))
        owners = await info.context.his_patient_owners()
        if not owners:
            return Connection(edges=[], page_info=PageInfo(has_next_page=False, end_cursor=None))
        deps = info.context.deps
        page = await registration.registrations_page(
            deps,
            account_id=info.context.viewer.account_id or 0,
            his_patient_ids=list(owners),
            flt=c.RegistrationFilter(
                statuses=tuple(s.value for s in flt.statuses) if flt.statuses else (ACTIVE if flt.upcoming else ()),
                date_from=flt.date_from,
                date_to=flt.date_to,
            ),
            upcoming=bool(flt.upcoming),
            after=after,
            first=first,
        )
        nodes = await registrations_of(info, [(r, owners[r.his_patient_id]) for r in page.items])
        edges = [Edge(cursor=cursor, node=node) for node, cursor in zip(nodes, page.cursors, strict=True)]
        return Connection(
            edges=edges, page_info=PageInfo(has_next_page=page.has_more, end_cursor=edges[-1].cursor if edges else None)
        )

    @strawberry.field(permission_classes=[IsPatient])
    async def registration(self, info: Ctx, id: strawberry.ID) -> Registration | None:
        owners = await info.context.his_patient_owners()
        found = await in_service(info.context.deps.sources.his.registrations_by_ids([id]))
        if not found or found[0].his_patient_id not in owners:
            return None
        return (await registrations_of(info, [(found[0], owners[found[0].his_patient_id])]))[0]

    pending_bills: list[PendingBill] = strawberry.field(
        resolver=pending_bills_field, permission_classes=[IsPatient],
        description="待缴费: the unpaid bills of the account's patients (or one of them), oldest first.",
    )
    payments: list[PaymentOrder] = strawberry.field(
        resolver=payments_field, permission_classes=[IsPatient], description="The account's payments, newest first."
    )
    payment: PaymentOrder | None = strawberry.field(resolver=payment_field, permission_classes=[IsPatient])
    insurance_authorize_url: str = strawberry.field(
        resolver=insurance_authorize_url_field, permission_classes=[IsPatient],
        description="医保授权: open this page; it returns to returnUrl with the authCode for payBillsWithInsurance.",
    )
    deposit_accounts: list[DepositAccount] = strawberry.field(
        resolver=deposit_accounts_field, permission_classes=[IsPatient],
        description="预交金: the patient's deposit accounts (outpatient, and one per inpatient stay).",
    )

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def unread_notification_count(self, info: Ctx) -> int:
        return await info.context.loaders.unread_count_by_account.load(info.context.viewer.account_id or 0)

    @strawberry.field(permission_classes=[IsDoctor], description="The doctor's own sessions on a day (default today).")
    async def sessions(self, info: Ctx, date: dt.date | None = None) -> list[Schedule]:
        deps, viewer = info.context.deps, info.context.viewer
        day = date or local_date(deps.clock.now())
        found = await info.context.loaders.schedules_by_doctor.load((viewer.his_staff_id or "", day, day))
        return [Schedule.of(s) for s in found]

    @strawberry.field(permission_classes=[IsDoctor], description="The queue of one of the doctor's sessions.")
    async def queue(self, info: Ctx, schedule_id: strawberry.ID) -> QueueState:
        schedule = await info.context.loaders.schedule_by_id.load(schedule_id)
        if schedule is None or schedule.doctor_id != info.context.viewer.his_staff_id:
            raise NotFound("No such session among yours.")
        snapshot = await info.context.loaders.queue_snapshot_by_schedule.load(schedule_id)
        assert snapshot is not None
        return QueueState(
            schedule_id=strawberry.ID(snapshot.schedule_id),
            called_number=snapshot.called_number,
            waiting=list(snapshot.waiting),
        )
