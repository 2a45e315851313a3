"""A circuit breaker for the HTTP clients of external systems: a system that keeps failing is not
hammered; after a cool-down one trial call decides whether it is back."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from datasources.errors import SourceUnavailable

log = logging.getLogger(__name__)


class CircuitBreaker:
    """closed → (threshold consecutive failures) → open → (cool-down) → half-open: one trial call."""

    def __init__(
        self, source: str, *, threshold: int, cooldown: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.source = source
        self.threshold = threshold
        self.cooldown = cooldown
        self._monotonic = monotonic
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half-open" if self._monotonic() - self._opened_at >= self.cooldown else "open"

    def admit(self) -> None:
        """Raises ``SourceUnavailable`` at once unless a call may go out now."""
        state = self.state
        if state == "closed":
            return
        if state == "open" or self._trial_running:
            raise SourceUnavailable(
                self.source, f"circuit open: {self.source} failed repeatedly, not calling it for a while"
            )
        self._trial_running = True

    def succeeded(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_running = False

    def failed(self) -> None:
        self._failures += 1
        if self._trial_running or self._failures >= self.threshold:
            if self._opened_at is None or self._trial_running:
                log.warning("%s circuit opens after %d consecutive failures", self.source, self._failures)
            self._opened_at = self._monotonic()
        self._trial_running = False

    def answered(self) -> None:
        """The call ended without a verdict on the system's health (e.g. it was cancelled)."""
        self._trial_running = False
