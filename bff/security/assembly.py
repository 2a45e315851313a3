"""Builds the gateway's parts in the app's lifespan: the app registry, the verifier, the response
signer, and the background work that keeps them current (reloads, usage, expiry warnings)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from bff.security.gateway import GatewayState, ResponseSigner
from bff.security.nonces import nonces_from_url
from bff.security.signatures import AppRegistry, SignaturePolicy, Verifier
from bff.settings import Settings
from datasources.clock import Clock
from datasources.crypto import certificates, primitives
from datasources.store.db import Database
from datasources.store.keyring import CA_RSA, CA_SM2, RESPONSE_SIGNING, Keyring
from resolvers import apps
from resolvers.apps import CertificatePolicy

log = logging.getLogger(__name__)
RESPONSE_APP_ID = "bff-responses"


def certificate_policy(settings: Settings) -> CertificatePolicy:
    return CertificatePolicy(
        valid_days=settings.app_certificate_valid_days,
        warn_days=settings.certificate_expiry_warning_days,
        organization=settings.ca_organization,
    )


async def response_signer(settings: Settings, keyring: Keyring, clock: Clock) -> ResponseSigner:
    """The BFF's own response-signing key, certified by the app CA of its algorithm."""
    algorithm = settings.response_signature_algorithm
    key = await keyring.ensure(RESPONSE_SIGNING, algorithm)
    private = primitives.load_private_key(key.material)
    if key.certificate_pem is None:
        root = await apps.authority(keyring, algorithm, clock=clock, organization=settings.ca_organization)
        now = clock.now()
        issued = certificates.issue(
            root,
            subject_public_key=private.public_key(),
            app_id=RESPONSE_APP_ID,
            app_name="BFF response signatures",
            not_before=now - timedelta(minutes=5),
            not_after=min(now + timedelta(days=825), root.certificate.not_after),
        )
        await keyring.set_certificate(key.kid, issued.pem, expires_at=issued.not_after)
        key = keyring.get(key.kid)
    assert key.certificate_pem is not None
    return ResponseSigner(key=private, serial=certificates.parse(key.certificate_pem).serial)


@asynccontextmanager
async def gateway(
    settings: Settings, db: Database, keyring: Keyring, clock: Clock, *, on_change_every_s: float = 30.0
) -> AsyncIterator[GatewayState]:
    registry = AppRegistry(db)
    await registry.refresh()
    nonces = nonces_from_url(settings.redis_url, namespace=settings.broker_namespace)
    policy = SignaturePolicy(max_skew_s=settings.signature_max_skew_seconds, required=settings.signatures_required)
    state = GatewayState(verifier=Verifier(registry, nonces, clock, policy), routes=tuple(settings.signed_routes))
    state.response_signer = await response_signer(settings, keyring, clock)
    task = asyncio.create_task(_upkeep(state, db, keyring, clock, settings, on_change_every_s), name="gateway")
    try:
        yield state
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(Exception):
            await state.verifier.usage.flush(db)
        await nonces.close()


async def _upkeep(
    state: GatewayState, db: Database, keyring: Keyring, clock: Clock, settings: Settings, every_s: float
) -> None:
    """Every ``every_s``: write usage counts, reload apps; every hour: warn of expiring certificates."""
    policy = certificate_policy(settings)
    next_warning = 0.0
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(every_s)
        try:
            await state.verifier.usage.flush(db)
            await state.verifier.registry.refresh()
            if loop.time() >= next_warning:
                next_warning = loop.time() + 3600
                await apps.warn_expiring(db, keyring, clock, policy)
        except Exception:
            log.warning("gateway upkeep failed; retrying on the next round", exc_info=True)


def served_certificates(keyring: Keyring, state: GatewayState) -> dict[str, Any]:
    authorities = {
        key.algorithm: key.certificate_pem
        for key in keyring.keys()
        if key.purpose in (CA_SM2, CA_RSA) and key.state == "ACTIVE" and key.certificate_pem
    }
    response = keyring.active(RESPONSE_SIGNING).certificate_pem if state.response_signer else None
    return {"authorities": authorities, "responseCertificate": response}


class ExpiryCollector:
    """``bff_certificate_expiry_timestamp_seconds`` per app certificate and
    ``bff_managed_key_expiry_timestamp_seconds`` per managed key, read at each scrape: alert on
    ``(x - time()) / 86400 < 30``."""

    def __init__(self, registry: AppRegistry, keyring: Keyring) -> None:
        self.registry = registry
        self.keyring = keyring

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        certs = GaugeMetricFamily(
            "bff_certificate_expiry_timestamp_seconds",
            "When each app certificate that is not revoked expires (Unix time)",
            labels=["app_id", "serial"],
        )
        for cert in self.registry.certificates():
            if not cert.revoked:
                certs.add_metric([cert.app_id, cert.serial], cert.not_after.timestamp())
        yield certs
        keys = GaugeMetricFamily(
            "bff_managed_key_expiry_timestamp_seconds",
            "When each managed key with an expiry (a certificate's) expires (Unix time)",
            labels=["kid", "purpose"],
        )
        for key in self.keyring.keys():
            if key.expires_at is not None and key.state != "RETIRED":
                keys.add_metric([key.kid, key.purpose], key.expires_at.timestamp())
        yield keys
