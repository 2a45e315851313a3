"""What the use cases need from the outside world, assembled once by ``bff.app``."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from datasources.cache import Cache
from datasources.clock import Clock, SystemClock
from datasources.sources import Sources
from datasources.store.audit import AuditLog
from datasources.store.db import Database
from datasources.store.fieldcrypt import FieldCipher
from realtime.broker import Broker
from realtime.invalidations import Invalidations
from resolvers.apps import CertificatePolicy
from resolvers.identity import FrontEnd, SessionPolicy

if TYPE_CHECKING:
    from resolvers.payments.orders import Payments


@dataclass(frozen=True, slots=True)
class BookingRules:
    geofence_radius_m: float = 1000.0
    take_number_cutoff: timedelta = timedelta(0)
    cancel_cutoff: timedelta = timedelta(minutes=60)
    unpaid_hold: timedelta = timedelta(minutes=15)
    lock_seconds: int = 300
    credit_timeout_s: float = 3.0


@dataclass(slots=True)
class Deps:
    db: Database
    cipher: FieldCipher
    sources: Sources
    broker: Broker
    clock: Clock
    # The sealed, hash-chained audit log (staff actions, reads of unmasked personal data).
    audit: AuditLog
    rules: BookingRules = field(default_factory=BookingRules)
    sessions: SessionPolicy = field(default_factory=SessionPolicy)
    # The front ends that may open sessions, by session channel code (from clients/ profiles).
    front_ends: Mapping[str, FrontEnd] = field(default_factory=dict)
    cache: Cache = field(default_factory=Cache)
    # Set by the app: invalidations reach every BFF process through the broker.
    invalidations: Invalidations | None = None
    # Real time for security (certificate validity, signature timestamps), whatever ``clock`` says.
    security_clock: Clock = field(default_factory=SystemClock)
    certificates: CertificatePolicy = field(default_factory=CertificatePolicy)
    reloaders: dict[str, Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=dict)
    # The payment channels and order rules (resolvers/payments); None when no channel is enabled.
    payments: Payments | None = None

    async def invalidate(self, *keys: str) -> None:
        """Call after the write that changed the data has committed. Keys with a reloader (the app
        registry, the keyring) are reloaded here before returning: this process is current at once."""
        for key in keys:
            reload = self.reloaders.get(key)
            if reload is not None:
                await reload()
        if self.invalidations is not None:
            await self.invalidations.invalidate(*keys)
        else:
            self.cache.invalidate(keys)
