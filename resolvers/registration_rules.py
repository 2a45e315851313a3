"""When a registration may be checked in or cancelled: one place, used by the actions and by the
fields that tell the UI in advance (so a button is greyed out instead of failing when pressed)."""

from __future__ import annotations

from datetime import datetime

from datasources.clock import local_date
from datasources.his import contract as c
from resolvers.deps import BookingRules
from resolvers.errors import CutoffPassed, DomainError, NotAllowed

APPOINTMENT = "APPOINTMENT"
SAME_DAY = "SAME_DAY"


def _state(r: c.Registration) -> str:
    return r.status.lower().replace("_", " ")


def check_in_closes_at(r: c.Registration, rules: BookingRules) -> datetime:
    return r.ends_at - rules.take_number_cutoff


def cancel_deadline(r: c.Registration, rules: BookingRules) -> datetime | None:
    """Same-day registrations cannot be cancelled at all: no deadline."""
    return None if r.kind == SAME_DAY else r.starts_at - rules.cancel_cutoff


def check_in_refusal(r: c.Registration, now: datetime, rules: BookingRules) -> DomainError | None:
    if r.status != "BOOKED":
        return NotAllowed(f"This registration is {_state(r)}; it cannot check in.", r.status)
    if local_date(r.starts_at) != local_date(now):
        return NotAllowed("Check-in opens on the day of the visit.", "NOT_VISIT_DAY")
    closes = check_in_closes_at(r, rules)
    if now >= closes:
        return CutoffPassed("Check-in for this slot has closed; please ask at the registration desk.", closes)
    return None


def cancel_refusal(r: c.Registration, now: datetime, rules: BookingRules) -> DomainError | None:
    deadline = cancel_deadline(r, rules)
    if deadline is None:
        return NotAllowed("Same-day registrations cannot be cancelled.", "SAME_DAY_NOT_CANCELLABLE")
    if r.status != "BOOKED":
        return NotAllowed(f"This registration is {_state(r)}; it cannot be cancelled.", r.status)
    if now >= deadline:
        return CutoffPassed("The time to cancel this appointment online has passed; please ask at the desk.", deadline)
    return None
