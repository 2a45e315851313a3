"""Names and lifetimes of what the BFF caches; one place, so writes invalidate the right keys.

The lifetimes bound how stale a read can be when a change did not go through this BFF (a desk
registration in HIS, a catalog edit); changes made through the BFF invalidate at once, everywhere.
"""

from __future__ import annotations

SESSION_TTL = 30.0
CATALOG_TTL = 300.0
PATIENTS_TTL = 300.0
UNREAD_TTL = 60.0
REGISTRATIONS_TTL = 5.0
QUEUE_TTL = 3.0
SLOT_TTL = 60.0

DOCTOR = "doctor"
DEPARTMENT = "department"
CARDS = "cards"
PATIENTS = "patients"
UNREAD = "unread"
QUEUE = "queue"
CAMPUS = "campus"


def session(token_hash: str) -> str:
    return f"session:{token_hash}"


def patients(account_id: int) -> str:
    return f"{PATIENTS}:{account_id}"


def cards(patient_id: int) -> str:
    return f"{CARDS}:{patient_id}"


def unread(account_id: int) -> str:
    return f"{UNREAD}:{account_id}"


def registrations(account_id: int) -> str:
    return f"registrations:{account_id}"


def slot(slot_id: str) -> str:
    return f"slot:{slot_id}"


def queue(schedule_id: str) -> str:
    return f"{QUEUE}:{schedule_id}"


def personal(account_id: int, patient_ids: list[int]) -> list[str]:
    """Every key holding an account's personal data, dropped at logout. The registration lists'
    variants hang off ``registrations(account_id)`` by generation: invalidating it makes them
    unreachable at once (they expire within REGISTRATIONS_TTL)."""
    return [
        patients(account_id),
        unread(account_id),
        registrations(account_id),
        *(cards(p) for p in patient_ids),
    ]
