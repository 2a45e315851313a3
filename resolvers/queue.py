"""Queue positions: computed from a snapshot, so one published event serves every subscriber."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from datasources.his import contract as c

WAITING = "WAITING"  # checked in, in the queue
CALLED = "CALLED"  # it is this patient's turn
PASSED = "PASSED"  # called earlier, consultation over or number passed
NOT_CHECKED_IN = "NOT_CHECKED_IN"


@dataclass(frozen=True, slots=True)
class QueuePosition:
    registration_id: str
    schedule_id: str
    state: str
    queue_number: int | None
    called_number: int | None
    ahead: int
    estimated_wait_minutes: int


def position(
    registration_id: str,
    schedule_id: str,
    queue_number: int | None,
    registration_status: str | None,
    snapshot: c.QueueSnapshot,
) -> QueuePosition:
    """Where one registration stands, from the queue's snapshot alone (no query). ``waiting`` is
    sorted, so this is a binary search: a thousand subscribers of one queue cost a thousand
    look-ups, not a thousand scans of the queue."""
    called, waiting = snapshot.called_number, snapshot.waiting
    at = bisect_left(waiting, queue_number) if queue_number is not None else 0
    if queue_number is None:
        state = NOT_CHECKED_IN
        ahead = len(waiting)
    elif queue_number == called and registration_status in (None, "CALLED"):
        state, ahead = CALLED, 0
    elif at < len(waiting) and waiting[at] == queue_number:
        state, ahead = WAITING, at
    else:
        state, ahead = PASSED, 0
    wait = ahead * snapshot.average_consult_minutes if state in (WAITING, NOT_CHECKED_IN) else 0
    return QueuePosition(
        registration_id=registration_id,
        schedule_id=schedule_id,
        state=state,
        queue_number=queue_number,
        called_number=called,
        ahead=ahead,
        estimated_wait_minutes=wait,
    )


def event_of(snapshot: c.QueueSnapshot) -> dict[str, Any]:
    return {
        "type": "queue",
        "scheduleId": snapshot.schedule_id,
        "calledNumber": snapshot.called_number,
        "waiting": list(snapshot.waiting),
        "averageConsultMinutes": snapshot.average_consult_minutes,
    }


def snapshot_of(event: dict[str, Any]) -> c.QueueSnapshot:
    """The snapshot an event carries. Every local subscriber receives the same event object, so the
    first one parses it and leaves the result on the event for the others."""
    parsed = event.get(_PARSED)
    if isinstance(parsed, c.QueueSnapshot):
        return parsed
    snapshot = c.QueueSnapshot(
        schedule_id=str(event["scheduleId"]),
        called_number=event.get("calledNumber"),
        waiting=tuple(sorted(int(n) for n in event.get("waiting", ()))),
        average_consult_minutes=int(event.get("averageConsultMinutes", 10)),
    )
    event[_PARSED] = snapshot
    return snapshot


_PARSED = "_parsed_snapshot"


def positions_for(
    registrations: Sequence[c.Registration], snapshots: dict[str, c.QueueSnapshot]
) -> list[QueuePosition | None]:
    out: list[QueuePosition | None] = []
    for r in registrations:
        snap = snapshots.get(r.schedule_id)
        if snap is None or r.status not in ("CHECKED_IN", "CALLED"):
            out.append(None)
        else:
            out.append(position(r.id, r.schedule_id, r.queue_number, r.status, snap))
    return out
