"""A circuit breaker for the HTTP clients of external systems: a system that keeps failing is not
hammered; after a cool-down one trial call decides whether it is back."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from datasources.errors import SourceUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


class AttemptFailed(Exception):
    """One attempt failed in a way worth retrying (idempotent calls) and counting (for the breaker)."""


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

    async def call(
        self,
        what: str,
        attempt: Callable[[], Awaitable[T]],
        *,
        tries: int = 1,
        backoff_s: float = 0.0,
        exhausted: Callable[[str], Exception] | None = None,
    ) -> T:
        """Makes ``attempt`` through the breaker. ``AttemptFailed`` counts as a failure and is tried
        again, ``tries`` times in all with exponential backoff: more than 1 for idempotent calls only.
        The last failure raises ``exhausted(message)`` (e.g. "outcome unknown") or SourceUnavailable."""
        for n in range(tries):
            self.admit()
            try:
                result = await attempt()
            except AttemptFailed as exc:
                self.failed()
                message = f"{what}: {exc}"
                if n + 1 == tries:
                    raise (exhausted(message) if exhausted else SourceUnavailable(self.source, message)) from None
                log.info("%s %s failed (%s); retrying", self.source, what, exc)
                await asyncio.sleep(backoff_s * 2**n)
                continue
            except BaseException:
                self.answered()
                raise
            self.succeeded()
            return result
        raise ValueError("tries must be at least 1")
