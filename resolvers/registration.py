"""Booking, same-day registration, check-in and cancellation, across HIS and the credit platform.

Every flow that touches HIS follows its lock → confirm → unlock protocol and compensates its own
partial work: a lock that cannot be confirmed is unlocked; a same-day registration whose automatic
check-in fails is cancelled. Events are published only after HIS has committed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any

from datasources.clock import SHANGHAI, local_date
from datasources.credit import contract as credit
from datasources.errors import SourceRejected, SourceUnavailable
from datasources.his import contract as c
from realtime import topics
from resolvers import cache_keys, notifications, patients, queue
from resolvers import registration_rules as rules
from resolvers.catalog import current_period
from resolvers.deps import Deps
from resolvers.errors import (
    HIS_DOWN,
    AlreadyRegistered,
    CreditDefaulted,
    CutoffPassed,
    MedicalCardRequired,
    NotAllowed,
    NotFound,
    OutsideGeofence,
    ServiceUnavailable,
    SlotTaken,
    in_service,
)
from resolvers.geofence import Point, distance_m, validate
from resolvers.registration_rules import APPOINTMENT, SAME_DAY

log = logging.getLogger(__name__)

NOTICE_DEFAULTED_ELSEWHERE = (
    "You have unpaid bills at another hospital, so treat-first-pay-later is not available: "
    "please pay for each item before it is done."
)
NOTICE_CREDIT_UNKNOWN = (
    "We could not confirm your credit status just now, so treat-first-pay-later is not available "
    "for this visit: please pay for each item before it is done."
)
NOTICE_PAY_LATER = "You can be treated first and pay afterwards (先诊疗后付费)."


@dataclass(frozen=True, slots=True)
class CreditDecision:
    status: str  # GOOD, DEFAULTED_ELSEWHERE, UNKNOWN, UNAVAILABLE
    pay_later_eligible: bool
    notice: str | None


@dataclass(frozen=True, slots=True)
class Booked:
    registration: c.Registration
    patient_id: int
    credit: CreditDecision


@dataclass(frozen=True, slots=True)
class CheckedIn:
    registration: c.Registration
    patient_id: int
    credit: CreditDecision
    position: queue.QueuePosition


async def credit_decision(deps: Deps, patient: patients.PatientView) -> CreditDecision:
    """Asks the provincial platform; unknown is never GOOD, and an outage never blocks the patient."""
    try:
        report = await asyncio.wait_for(
            deps.sources.credit.status(name=patient.name, document_number=patient.document_number),
            timeout=deps.rules.credit_timeout_s,
        )
    except (SourceUnavailable, TimeoutError):
        log.warning("credit platform unavailable; continuing without pay-later")
        return CreditDecision("UNAVAILABLE", False, NOTICE_CREDIT_UNKNOWN)
    if report.status == credit.DEFAULTED_HERE:
        raise CreditDefaulted(report.arrears_here_fen, report.appeal_url)
    if report.status == credit.GOOD:
        return CreditDecision(credit.GOOD, True, NOTICE_PAY_LATER)
    if report.status == credit.DEFAULTED_ELSEWHERE:
        return CreditDecision(credit.DEFAULTED_ELSEWHERE, False, NOTICE_DEFAULTED_ELSEWHERE)
    return CreditDecision(credit.UNKNOWN, False, NOTICE_CREDIT_UNKNOWN)


async def _slot_and_schedule(deps: Deps, slot_id: str) -> tuple[c.Slot, c.Schedule]:
    """The slot's times and its session's fee, day and campus: cached, since only HIS's lock decides
    whether a place is left (the counts in a cached copy are never used)."""

    async def load() -> tuple[c.Slot, c.Schedule] | None:
        slots = await in_service(deps.sources.his.slots_by_ids([slot_id]))
        if not slots:
            return None
        schedules = await in_service(deps.sources.his.schedules_by_ids([slots[0].schedule_id]))
        return slots[0], schedules[0]

    found: tuple[c.Slot, c.Schedule] | None = await deps.cache.through(
        cache_keys.slot(slot_id), cache_keys.SLOT_TTL, load
    )
    if found is None:
        raise NotFound("No such slot.")
    return found


async def _bookable_patient(deps: Deps, account_id: int, patient_id: int) -> tuple[patients.PatientView, str]:
    patient = await patients.owned(deps, account_id=account_id, patient_id=patient_id)
    patients.require_complete(patient)
    cards = (await patients.cards_of(deps, [patient.id]))[0]
    if not cards or patient.his_patient_id is None:
        raise MedicalCardRequired(patient.id)
    card = next((k for k in cards if k.his_patient_id == patient.his_patient_id), cards[0])
    return patient, card.card_no


async def _check_geofence(deps: Deps, campus_id: str, location: Point) -> None:
    validate(location)
    campuses = {k.id: k for k in await in_service(deps.sources.his.campuses())}
    campus = campuses[campus_id]
    where = Point(campus.latitude, campus.longitude, campus.coordinate_system)
    distance = distance_m(location, where)
    if distance > deps.rules.geofence_radius_m:
        raise OutsideGeofence(distance, deps.rules.geofence_radius_m, campus.name)


async def _register(
    deps: Deps,
    *,
    patient: patients.PatientView,
    card_no: str,
    slot: c.Slot,
    kind: str,
    decision: CreditDecision,
    fee_fen: int,
) -> c.Registration:
    """lock → confirm; unlock when confirming fails."""
    his = deps.sources.his
    assert patient.his_patient_id is not None
    try:
        lock = await his.lock_slot(
            slot_id=slot.id,
            his_patient_id=patient.his_patient_id,
            card_no=card_no,
            kind=kind,
            lock_seconds=deps.rules.lock_seconds,
        )
    except SourceRejected as exc:
        if exc.code == c.SLOT_FULL:
            raise SlotTaken("This slot has just been taken; please choose another time.") from exc
        if exc.code == c.ALREADY_REGISTERED:
            raise AlreadyRegistered("This patient already has a registration for this doctor's session.") from exc
        if exc.code == c.SLOT_NOT_FOUND:
            raise NotFound("No such slot.") from exc
        if exc.code == c.INVALID_STATE:
            raise NotAllowed("This slot has already ended.", "SLOT_ENDED") from exc
        raise
    except SourceUnavailable as exc:
        raise ServiceUnavailable(HIS_DOWN) from exc
    if fee_fen == 0:
        payment, hold = "PAID", None
    elif decision.pay_later_eligible:
        payment, hold = "PAY_LATER", None
    else:
        payment, hold = "UNPAID", deps.clock.now() + deps.rules.unpaid_hold
    try:
        return await his.confirm_registration(lock_id=lock.id, payment_status=payment, hold_expires_at=hold)
    except BaseException:
        try:
            await asyncio.shield(his.unlock_slot(lock.id))
        except Exception:
            log.exception("unlocking slot lock %s failed; HIS releases it when the lock expires", lock.id)
        await publish_released(deps, slot.schedule_id)
        raise


async def _notify(deps: Deps, account_id: int, kind: str, title: str, body: str) -> None:
    """Best effort: the registration stands whether or not its message is stored."""
    try:
        async with deps.db.writing() as s:
            notifications.add(s, account_id=account_id, kind=kind, title=title, body=body, at=deps.clock.now())
    except Exception:
        log.exception("storing a %s notification failed", kind)
    # The account's registrations changed too: whoever notifies has just booked, checked in or cancelled.
    await deps.invalidate(cache_keys.unread(account_id), cache_keys.registrations(account_id))


async def book_appointment(deps: Deps, *, account_id: int, patient_id: int, slot_id: str) -> Booked:
    patient, card_no = await _bookable_patient(deps, account_id, patient_id)
    slot, schedule = await _slot_and_schedule(deps, slot_id)
    if slot.starts_at <= deps.clock.now():
        raise NotAllowed(
            "This slot has already started; choose a later one or use same-day registration.", "SLOT_STARTED"
        )
    decision = await credit_decision(deps, patient)
    registration = await _register(
        deps, patient=patient, card_no=card_no, slot=slot, kind=APPOINTMENT, decision=decision, fee_fen=schedule.fee_fen
    )
    await _notify(deps, account_id, "REGISTRATION_BOOKED", "Appointment booked", _describe(registration))
    return Booked(registration, patient.id, decision)


async def register_same_day(
    deps: Deps, *, account_id: int, patient_id: int, slot_id: str, location: Point
) -> CheckedIn:
    now = deps.clock.now()
    patient, card_no = await _bookable_patient(deps, account_id, patient_id)
    slot, schedule = await _slot_and_schedule(deps, slot_id)
    if schedule.day != local_date(now) or schedule.period != current_period(now):
        raise NotAllowed("Same-day registration offers only the current half-day's slots.", "NOT_CURRENT_SESSION")
    cutoff = slot.ends_at - deps.rules.take_number_cutoff
    if now >= cutoff:
        raise CutoffPassed("Numbers for this slot can no longer be taken; choose a later slot.", cutoff)
    await _check_geofence(deps, schedule.campus_id, location)
    decision = await credit_decision(deps, patient)
    registration = await _register(
        deps, patient=patient, card_no=card_no, slot=slot, kind=SAME_DAY, decision=decision, fee_fen=schedule.fee_fen
    )
    try:
        checked = await deps.sources.his.check_in(registration.id)
    except BaseException:
        try:
            await asyncio.shield(deps.sources.his.cancel_registration(registration.id))
            await publish_released(deps, slot.schedule_id)
        except Exception:
            log.exception("compensating same-day registration %s failed", registration.id)
        raise
    snapshot = await _queue_after_check_in(deps, checked.schedule_id)
    await _notify(deps, account_id, "REGISTRATION_CHECKED_IN", "Registered and checked in", _describe(checked))
    return CheckedIn(
        checked,
        patient.id,
        decision,
        queue.position(checked.id, checked.schedule_id, checked.queue_number, checked.status, snapshot),
    )


async def owned_registration(deps: Deps, *, account_id: int, registration_id: str) -> tuple[c.Registration, int]:
    """The registration and the account's patient it belongs to; anyone else's does not exist."""
    found = await in_service(deps.sources.his.registrations_by_ids([registration_id]))
    if found:
        owners = await his_patient_owners(deps, account_id)
        if found[0].his_patient_id in owners:
            return found[0], owners[found[0].his_patient_id]
    raise NotFound("No such registration on this account.")


async def his_patient_owners(deps: Deps, account_id: int) -> dict[str, int]:
    """HIS patient id → the account's patient id, over every card bound to the account's patients."""
    mine = (await patients.of_accounts(deps, [account_id]))[0]
    cards = await patients.cards_of(deps, [p.id for p in mine])
    owners = {card.his_patient_id: card.patient_id for group in cards for card in group}
    owners.update({p.his_patient_id: p.id for p in mine if p.his_patient_id})
    return owners


async def check_in(deps: Deps, *, account_id: int, registration_id: str, location: Point) -> CheckedIn:
    now = deps.clock.now()
    registration, patient_id = await owned_registration(deps, account_id=account_id, registration_id=registration_id)
    if refusal := rules.check_in_refusal(registration, now, deps.rules):
        raise refusal
    await _check_geofence(deps, registration.campus_id, location)
    patient = await patients.owned(deps, account_id=account_id, patient_id=patient_id)
    decision = await credit_decision(deps, patient)
    try:
        checked = await deps.sources.his.check_in(registration.id)
    except SourceRejected as exc:
        raise NotAllowed("This registration can no longer check in.", exc.code) from exc
    except SourceUnavailable as exc:
        raise ServiceUnavailable(HIS_DOWN) from exc
    snapshot = await _queue_after_check_in(deps, checked.schedule_id)
    return CheckedIn(
        checked,
        patient_id,
        decision,
        queue.position(checked.id, checked.schedule_id, checked.queue_number, checked.status, snapshot),
    )


@dataclass(frozen=True, slots=True)
class Cancelled:
    registration: c.Registration
    patient_id: int
    refund_pending: bool
    refund: Any = None  # resolvers.payments.refunds.Refund, when the fee was paid online


async def cancel_registration(deps: Deps, *, account_id: int, registration_id: str) -> Cancelled:
    registration, patient_id = await owned_registration(deps, account_id=account_id, registration_id=registration_id)
    if refusal := rules.cancel_refusal(registration, deps.clock.now(), deps.rules):
        raise refusal
    try:
        cancelled = await deps.sources.his.cancel_registration(registration.id)
    except SourceRejected as exc:
        raise NotAllowed("This registration can no longer be cancelled.", exc.code) from exc
    except SourceUnavailable as exc:
        raise ServiceUnavailable(HIS_DOWN) from exc
    await publish_released(deps, cancelled.schedule_id)
    await _notify(deps, account_id, "REGISTRATION_CANCELLED", "Appointment cancelled", _describe(cancelled))
    # The paid fee goes back by its original route (imported here: payments builds on registrations).
    from resolvers.payments.outpatient import refund_cancelled_registration

    refund = await refund_cancelled_registration(deps, cancelled)
    refund_pending = cancelled.payment_status == "PAID" and cancelled.fee_fen > 0
    if refund is not None:
        refund_pending = refund.status != "SUCCEEDED"
    return Cancelled(cancelled, patient_id, refund_pending=refund_pending, refund=refund)


async def release_expired_holds(deps: Deps) -> int:
    """Gives back the places of unpaid registrations whose hold has ended; one event per place."""
    released = await deps.sources.his.release_expired()
    for registration in released:
        await publish_released(deps, registration.schedule_id, registration.slot_id)
    return len(released)


async def publish_released(deps: Deps, schedule_id: str, slot_id: str | None = None) -> None:
    await deps.broker.publish(
        topics.slot_released(schedule_id), {"type": "slot-released", "scheduleId": schedule_id, "slotId": slot_id}
    )


async def publish_queue(deps: Deps, schedule_id: str) -> c.QueueSnapshot | None:
    """Reads the queue from HIS and tells everyone who follows it; None when HIS has no such session."""
    found = await deps.sources.his.queue_snapshots([schedule_id])
    if not found:
        return None
    await _queue_changed(deps, found[0])
    return found[0]


async def _queue_after_check_in(deps: Deps, schedule_id: str) -> c.QueueSnapshot:
    snapshot = await publish_queue(deps, schedule_id)
    if snapshot is None:  # HIS has just checked someone into this very session
        raise ServiceUnavailable("The hospital system did not return the session's queue; please refresh.")
    return snapshot


async def _queue_changed(deps: Deps, snapshot: c.QueueSnapshot) -> None:
    await deps.invalidate(cache_keys.queue(snapshot.schedule_id))
    await deps.broker.publish(topics.queue(snapshot.schedule_id), queue.event_of(snapshot))


async def registrations_page(
    deps: Deps,
    *,
    account_id: int,
    his_patient_ids: list[str],
    flt: c.RegistrationFilter,
    upcoming: bool,
    after: str | None,
    first: int,
) -> c.RegistrationPage:
    """The account's registrations from HIS, cached briefly per account; its own changes invalidate.

    ``upcoming`` keeps only visits not over when HIS is asked; the key does not hold that instant, so a
    busy page is refreshed ahead like any other and a visit over for less than its lifetime
    (``REGISTRATIONS_TTL``) may still be listed."""
    account_key = cache_keys.registrations(account_id)
    # Invalidating the account's key moves its generation on: every cached page of it is left behind.
    variant = (tuple(sorted(his_patient_ids)), flt, upcoming, after, first)
    key = f"{account_key}#{deps.cache.generation(account_key)}:{hash(variant)}"

    async def load() -> c.RegistrationPage:
        asked = replace(flt, upcoming_from=deps.clock.now()) if upcoming else flt
        page: c.RegistrationPage = await in_service(
            deps.sources.his.registrations_of_patients(his_patient_ids, asked, after=after, first=first)
        )
        return page

    return await deps.cache.through(key, cache_keys.REGISTRATIONS_TTL, load)


async def call_next(
    deps: Deps, *, doctor_his_id: str | None, schedule_id: str, actor_account_id: int | None, request_id: str = ""
) -> tuple[c.QueueSnapshot, c.Registration]:
    """The doctor calls the next patient of their own session; audited as a staff action."""
    schedules = await in_service(deps.sources.his.schedules_by_ids([schedule_id]))
    if not schedules or doctor_his_id is None or schedules[0].doctor_id != doctor_his_id:
        raise NotFound("No such session among yours.")
    try:
        snapshot, called = await deps.sources.his.call_next(schedule_id)
    except SourceRejected as exc:
        if exc.code == c.QUEUE_EMPTY:
            raise NotAllowed("Nobody is waiting in this session.", "QUEUE_EMPTY") from exc
        raise
    except SourceUnavailable as exc:
        raise ServiceUnavailable(HIS_DOWN) from exc
    await _queue_changed(deps, snapshot)
    async with deps.db.writing() as s:
        await deps.audit.record(
            s,
            at=deps.clock.now(),
            actor_account_id=actor_account_id,
            actor_role="DOCTOR",
            action="queue.call_next",
            target_type="schedule",
            target_id=schedule_id,
            detail={"registration": called.id, "number": called.queue_number},
            request_id=request_id,
        )
    return snapshot, called


async def queue_entries(deps: Deps, schedule_id: str) -> list[c.QueueEntry]:
    """The doctor's view of a session's queue (reached only through the doctor's own session)."""
    entries: list[c.QueueEntry] = await in_service(deps.sources.his.queue_entries(schedule_id))
    return entries


def _describe(r: c.Registration) -> str:
    return f"Registration {r.id} for {r.starts_at.astimezone(SHANGHAI):%Y-%m-%d %H:%M}."
