"""Queue positions come from the queue's snapshot alone, the same for every subscriber of one event."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from datasources.his.contract import QueueSnapshot
from resolvers.queue import CALLED, NOT_CHECKED_IN, PASSED, WAITING, event_of, position, snapshot_of


@given(st.sets(st.integers(1, 400), max_size=120), st.integers(1, 400), st.none() | st.integers(1, 400))
def test_ahead_counts_the_waiting_numbers_before_mine(waiting: set[int], mine: int, called: int | None) -> None:
    snapshot = QueueSnapshot("s", called, tuple(sorted(waiting)), 7)
    p = position("r", "s", mine, None, snapshot)
    if mine == called:
        assert (p.state, p.ahead) == (CALLED, 0)
    elif mine in waiting:
        assert (p.state, p.ahead) == (WAITING, sum(1 for n in waiting if n < mine))
        assert p.estimated_wait_minutes == 7 * p.ahead
    else:
        assert (p.state, p.ahead) == (PASSED, 0)


def test_a_registration_not_checked_in_sees_the_whole_queue_ahead() -> None:
    p = position("r", "s", None, "BOOKED", QueueSnapshot("s", 3, (4, 5, 9), 10))
    assert (p.state, p.ahead, p.estimated_wait_minutes) == (NOT_CHECKED_IN, 3, 30)


def test_an_event_is_parsed_once_for_all_its_subscribers() -> None:
    event = event_of(QueueSnapshot("s", 2, (3, 4), 10))
    first, again = snapshot_of(event), snapshot_of(event)
    assert first is again
    assert first == QueueSnapshot("s", 2, (3, 4), 10)
