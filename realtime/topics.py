"""Topic names: the one place that spells them."""

from __future__ import annotations


def queue(schedule_id: str) -> str:
    """Queue changes of one doctor-session (a schedule)."""
    return f"queue:{schedule_id}"


def slot_released(schedule_id: str) -> str:
    """A place in one of the session's slots became free again (cancel, expiry, unlock)."""
    return f"slot-released:{schedule_id}"


SLOTS_RELEASED = "slot-released:*"


def notifications(account_id: int) -> str:
    return f"notifications:{account_id}"
