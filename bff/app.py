"""The one wiring point: ``create_app(settings, *, sources=None, broker=None, clock=None)``.

Everything with a lifetime (engine, broker, sources, background tasks) is built in the lifespan;
nothing is created at import. Tests build the app exactly like ``main.py`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, time, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Mount, Route, WebSocketRoute

from bff.callbacks import queue_changed
from bff.errors import ErrorPolicy
from bff.graphql_view import BFFGraphQL
from bff.keys import KEYRING_INVALIDATION, open_keyring
from bff.loaders import FreshLoadersPerOperation
from bff.metrics import Metrics, MetricsMiddleware
from bff.payment_callbacks import alipay_notified, wechat_med_ins_notified, wechatpay_notified
from bff.payment_pages import payment_page, payment_qr, sandbox_pay, statement_verification
from bff.payment_sources import build_money_sources
from bff.security.assembly import ExpiryCollector, certificate_policy, gateway, served_certificates
from bff.security.envelope import EncryptedFields, Unwrapper, transport_key
from bff.security.gateway import SignedRequests
from bff.security.redaction import keep_frame_payloads_out_of_logs
from bff.security.signatures import AppRegistry
from bff.security.transport import TransportPolicy, TransportSecurity
from bff.settings import Settings
from clients.profiles import load_profiles
from datasources.channels.sandbox import SandboxChannelLogin
from datasources.clock import SHANGHAI, Clock, SystemClock
from datasources.credit.sandbox import SandboxCreditPlatform
from datasources.face.sandbox import SandboxFaceVerification
from datasources.his.inpatient_served import his_hospital_gateway_sandbox_app
from datasources.his.sandbox import SandboxHIS
from datasources.sources import Sources
from datasources.store.audit import AuditChainBroken, AuditLog, retention_cutoff
from datasources.store.db import Database
from datasources.store.fieldcrypt import FieldCipher
from datasources.store.keyring import Keyring
from realtime.broker import Broker, broker_from_url
from realtime.invalidations import Invalidatable, Invalidations
from resolvers import idempotency
from resolvers.apps import APPS_INVALIDATION
from resolvers.deps import BookingRules, Deps
from resolvers.identity import FrontEnd, SessionPolicy
from resolvers.payments import deposits
from resolvers.payments import orders as payment_orders
from resolvers.payments import refunds as payment_refunds
from resolvers.payments.channels import (
    AlipayChannel,
    AlipayQrChannel,
    InsuranceOnlyChannel,
    PaymentChannel,
    WeChatMedInsChannel,
    WeChatNativeChannel,
    WeChatPayChannel,
)
from resolvers.reconciliation import runs as reconciliation_runs
from resolvers.registration import release_expired_holds
from schema.root import build_schema

log = logging.getLogger("bff")


def build_sources(settings: Settings, db: Database, clock: Clock) -> Sources:
    his: Any
    if settings.his.mode == "http":
        from datasources.his.http import HttpHIS

        his = HttpHIS(
            settings.his.url,
            timeout=settings.his.timeout_seconds,
            retries=settings.his.retries,
            failure_threshold=settings.his.failure_threshold,
            cooldown_seconds=settings.his.cooldown_seconds,
        )
    else:
        his = SandboxHIS(db, clock)
    money = build_money_sources(settings, db, clock)
    return Sources(
        his=his, credit=SandboxCreditPlatform(db), channels=SandboxChannelLogin(db, clock),
        billing=money.billing, inpatient=money.inpatient, wechatpay=money.wechatpay, alipay=money.alipay,
        mobile_insurance=money.mobile_insurance, wechat_med_ins=money.wechat_med_ins,
        face=SandboxFaceVerification(db, clock) if settings.face_verification_mode == "sandbox" else None,
    )


def payments_of(settings: Settings, sources: Sources) -> payment_orders.Payments | None:
    channels: dict[str, PaymentChannel] = {}
    if sources.wechatpay is not None:
        channels["WECHAT_PAY"] = WeChatPayChannel(sources.wechatpay)
        channels["WECHAT_NATIVE"] = WeChatNativeChannel(sources.wechatpay)
    if sources.alipay is not None:
        channels["ALIPAY"] = AlipayChannel(sources.alipay)
        channels["ALIPAY_QR"] = AlipayQrChannel(sources.alipay)
    if sources.wechatpay is not None and sources.wechat_med_ins is not None:
        channels["WECHAT_MED_INS"] = WeChatMedInsChannel(sources.wechatpay, sources.wechat_med_ins)
    if sources.mobile_insurance is not None:
        channels["INSURANCE"] = InsuranceOnlyChannel()
    if not channels:
        return None
    return payment_orders.Payments(
        channels=channels, order_timeout=timedelta(minutes=settings.payment_order_minutes),
        public_base_url=settings.public_base_url, write_backs={payment_orders.DEPOSIT: deposits.write_back},
        institution=payment_orders.Institution(settings.institution_code, settings.hospital_name),
    )


def front_ends() -> dict[str, FrontEnd]:
    """The front ends that may open sessions: read from the channel profiles in clients/, not coded."""
    return {
        p.login.session_channel: FrontEnd(
            code=p.login.session_channel, login=p.login.provider, roles=frozenset(p.roles), payment=p.payment_channel
        )
        for p in load_profiles().values()
    }


def rules_of(settings: Settings) -> tuple[BookingRules, SessionPolicy]:
    rules = BookingRules(
        geofence_radius_m=settings.geofence_radius_m,
        take_number_cutoff=timedelta(minutes=settings.take_number_cutoff_minutes),
        cancel_cutoff=timedelta(minutes=settings.cancel_cutoff_minutes),
        unpaid_hold=timedelta(minutes=settings.unpaid_hold_minutes),
    )
    policy = SessionPolicy(
        idle=timedelta(minutes=settings.session_idle_minutes),
        absolute=timedelta(hours=settings.session_absolute_hours),
        max_failures=settings.login_max_failures,
        lockout=timedelta(minutes=settings.login_lockout_minutes),
        operators_need_second_factor=settings.operators_need_second_factor,
        totp_issuer=settings.totp_issuer,
    )
    return rules, policy


class Reloads:
    """Cache invalidations, plus reloads of the keyring and the app registry when another process
    rotated a key or changed an app or certificate (a revocation takes effect everywhere at once)."""

    def __init__(self, cache: Invalidatable, keyring: Keyring, registry: AppRegistry) -> None:
        self.cache = cache
        self.reloaders: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
            KEYRING_INVALIDATION: keyring.refresh,
            APPS_INVALIDATION: registry.refresh,
        }
        self._reloads: set[asyncio.Task[None]] = set()

    def invalidate(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        for key in keys:
            reload = self.reloaders.get(key)
            if reload is not None:
                task = asyncio.get_running_loop().create_task(reload())
                self._reloads.add(task)
                task.add_done_callback(self._reloads.discard)
        self.cache.invalidate(keys)


async def _refresh_keys(keyring: Keyring, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await keyring.refresh()
        except Exception:
            log.warning("could not reload the managed keys; keeping the ones loaded", exc_info=True)


async def _sweep_holds(deps: Deps, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await release_expired_holds(deps)
        except Exception:
            log.exception("releasing expired holds failed; retrying next round")


async def _sweep_payments(deps: Deps, every_s: float) -> None:
    """Open orders past their time, payments not yet recorded at the HIS, refunds under way."""
    while True:
        await asyncio.sleep(every_s)
        if deps.payments is None:
            continue
        try:
            await payment_orders.sweep(deps, deps.payments)
            await payment_refunds.sweep(deps, deps.payments)
            await idempotency.purge_expired(deps.db, deps.clock)
        except Exception:
            log.exception("sweeping payments failed; retrying next round")


async def _reconcile_daily(deps: Deps, hour: int) -> None:
    """Yesterday's reconciliation, once a day from ``hour`` on. Every process tries; the run's
    schedule key lets one of them make it. A minute's grace after start keeps restarts quiet."""
    await asyncio.sleep(60.0)
    while True:
        now = deps.clock.now().astimezone(SHANGHAI)
        if now.hour >= hour:
            try:
                await reconciliation_runs.reconcile_scheduled(deps, now.date() - timedelta(days=1))
            except Exception:
                log.exception("the daily reconciliation failed; next day")
        next_at = datetime.combine(now.date() + timedelta(days=1), time(hour), tzinfo=SHANGHAI)
        await asyncio.sleep(max(60.0, (next_at - now).total_seconds()))


async def _purge_audit(deps: Deps, retention_days: int, every_s: float) -> None:
    """Audit retention, in every process: a minute after start, then every ``every_s``. Concurrent
    purges queue on the chain head; the later ones find nothing left to delete."""
    await asyncio.sleep(min(every_s, 60.0))
    while True:
        now = deps.clock.now()
        try:
            purged = await deps.audit.purge(deps.db, before=retention_cutoff(now, retention_days), at=now)
        except AuditChainBroken as exc:
            log.error("audit retention purge refused: %s; run `python -m bff.audit verify`", exc)
        except Exception:
            log.exception("audit retention purge failed; retrying next round")
        else:
            if purged.records:
                log.info("audit retention: %d records purged, the chain now starts after record %d",
                         purged.records, purged.anchor_seq)
        await asyncio.sleep(every_s)


def create_app(
    settings: Settings,
    *,
    sources: Sources | None = None,
    broker: Broker | None = None,
    clock: Clock | None = None,
    security_clock: Clock | None = None,
) -> Starlette:
    """``clock`` drives the hospital's rules (tests fix it); ``security_clock`` checks signature
    timestamps and certificate validity, and is the real clock unless a test sets it."""
    clock = clock or SystemClock()
    keep_frame_payloads_out_of_logs()
    security_clock = security_clock or SystemClock()
    metrics = Metrics()
    schema = build_schema([ErrorPolicy, FreshLoadersPerOperation])
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = Database(settings.database_url, schema=settings.database_schema)
        the_broker = broker or broker_from_url(settings.redis_url, namespace=settings.broker_namespace)
        await the_broker.start()
        rules, policy = rules_of(settings)
        keyring = await open_keyring(settings, db, clock)
        deps = Deps(
            db=db,
            cipher=FieldCipher(keyring),
            sources=sources or build_sources(settings, db, clock),
            broker=the_broker,
            clock=clock,
            audit=AuditLog(keyring),
            rules=rules,
            sessions=policy,
            front_ends=front_ends(),
            security_clock=security_clock,
            certificates=certificate_policy(settings),
        )
        deps.payments = payments_of(settings, deps.sources)
        gateway_parts = gateway(settings, db, keyring, security_clock)
        state["gateway"] = gw = await gateway_parts.__aenter__()
        app.state.gateway_state = gw
        metrics.watch(ExpiryCollector(gw.verifier.registry, keyring))
        state["unwrapper"] = Unwrapper(keyring)
        reloads = Reloads(deps.cache, keyring, gw.verifier.registry)
        deps.reloaders = reloads.reloaders
        deps.invalidations = Invalidations(reloads, the_broker)
        await deps.invalidations.start()
        state["deps"] = deps
        app.state.deps = deps
        graphql = BFFGraphQL(schema, deps, graphiql=settings.environment == "development", gateway=gw)
        state["graphql"] = graphql
        state["callback"] = queue_changed(deps, settings.callback_secret)
        sweeper = asyncio.create_task(_sweep_holds(deps, settings.hold_sweep_seconds), name="hold-sweeper")
        refresher = asyncio.create_task(_refresh_keys(keyring, settings.keyring_refresh_seconds), name="keyring")
        payment_sweeper = asyncio.create_task(
            _sweep_payments(deps, settings.payment_sweep_seconds), name="payment-sweeper"
        )
        purger = asyncio.create_task(
            _purge_audit(deps, settings.audit_retention_days, settings.audit_purge_seconds), name="audit-retention"
        )
        background = [sweeper, refresher, purger, payment_sweeper]
        if settings.reconciliation_hour >= 0:
            background.append(
                asyncio.create_task(_reconcile_daily(deps, settings.reconciliation_hour), name="reconciliation")
            )
        # Everything built so far lives as long as the process: keep the collector from walking it
        # on every full collection (those walks were the 100 ms spikes in the p99 latency).
        gc.collect()
        gc.freeze()
        # A request's objects die by reference counting (schema.execution breaks graphql-core's one
        # cycle), so the collector only has to find the rare cycle. The young generation counts
        # allocations net of frees: at 700 it ran ~300 times a second under load, walking every
        # request in flight each time (~9 % of the CPU, bff_gc_pause_seconds). At 10,000 that
        # halves; at 50,000 it all but vanishes, but the first collection after a thousand
        # subscriptions open then walks them all at once (a 0.4 s pause in a fan-out round).
        gc.set_threshold(settings.gc_young_threshold, 10, 100)
        try:
            async with metrics.watching_the_process():
                yield
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await deps.cache.close()
            await deps.invalidations.close()
            await gateway_parts.__aexit__(None, None, None)
            if broker is None:
                await the_broker.close()
            if sources is None:
                for source in (
                    deps.sources.his, deps.sources.billing, deps.sources.inpatient, deps.sources.wechatpay,
                    deps.sources.alipay, deps.sources.mobile_insurance,
                ):
                    close = getattr(source, "aclose", None)
                    if close is not None:
                        await close()
            await db.dispose()

    class GraphQLEndpoint:
        """Forwards to the GraphQL view built in the lifespan (an ASGI app, not a request handler)."""

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await state["graphql"](scope, receive, send)

    graphql_app = GraphQLEndpoint()

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        deps: Deps = state["deps"]
        checks: dict[str, str] = {}
        for name, probe in (("database", deps.db.ping), ("broker", deps.broker.ping)):
            try:
                await asyncio.wait_for(probe(), timeout=2.0)
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"failing: {type(exc).__name__}"
        ready = all(v == "ok" for v in checks.values())
        status = "ready" if ready else "not ready"
        return JSONResponse({"status": status, "checks": checks}, status_code=200 if ready else 503)

    async def callback(request: Request) -> JSONResponse:
        response: JSONResponse = await state["callback"](request)
        return response

    async def security_certificates(request: Request) -> JSONResponse:
        """The app CA roots and the response-signing certificate: public, so apps can verify."""
        return JSONResponse(served_certificates(state["deps"].cipher.keyring, state["gateway"]))

    async def security_transport_key(request: Request) -> JSONResponse:
        """The RSA-OAEP public key that wraps a request's data key (clients/envelope.py)."""
        return JSONResponse(await transport_key(state["deps"].cipher.keyring, settings.transport_key_algorithm))

    async def root(request: Request) -> RedirectResponse:
        return RedirectResponse("/graphql")

    sandbox_channels = settings.environment == "development" and "sandbox" in (
        settings.payment_mode(settings.wechatpay), settings.payment_mode(settings.alipay)
    )
    routes = [
        Route("/", root),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics.endpoint),
        Route("/security/certificates", security_certificates),
        Route("/security/transport-key", security_transport_key),
        Route("/callbacks/his/queue-changed", callback, methods=["POST"]),
        Route(payment_orders.NOTIFY_PREFIX + "wechatpay", wechatpay_notified(lambda: state["deps"]), methods=["POST"]),
        Route(payment_orders.NOTIFY_PREFIX + "alipay", alipay_notified(lambda: state["deps"]), methods=["POST"]),
        Route(
            payment_orders.NOTIFY_PREFIX + "wechatpay-medins", wechat_med_ins_notified(lambda: state["deps"]),
            methods=["POST"],
        ),
        Route(
            payment_orders.LINK_PREFIX + "{order_no}",
            payment_page(lambda: state["deps"], sandbox=sandbox_channels),
        ),
        Route(payment_orders.LINK_PREFIX + "{order_no}/qr.png", payment_qr(lambda: state["deps"])),
        Route(
            "/documents/settlement-statements/verify", statement_verification(lambda: state["deps"]), methods=["POST"]
        ),
        Route("/graphql", graphql_app, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql_app),
    ]
    if sandbox_channels:
        routes.append(
            Route(payment_orders.LINK_PREFIX + "{order_no}/sandbox-pay", sandbox_pay(lambda: state["deps"]),
                  methods=["POST"])
        )
    if settings.his.mode == "sandbox" and settings.environment == "development":
        # The HIS sandbox in the HIS gateway's wire format, for BFFs configured with his.mode = "http".
        # The HIS with its billing and inpatient department, in the HIS gateway's wire format, one mount.
        routes.append(
            Mount(
                "/sandbox/his",
                app=his_hospital_gateway_sandbox_app(
                    lambda: state["deps"].sources.his, lambda: state["deps"].sources.billing,
                    lambda: state["deps"].sources.inpatient,
                ),
            )
        )
    middleware = [
        # Outermost: a plain-HTTP request is redirected before anything else sees it.
        Middleware(TransportSecurity, policy=TransportPolicy.of(settings)),
        Middleware(MetricsMiddleware, metrics=metrics),
        # Then the signature check: refusals are measured, and nothing below sees an unverified request.
        Middleware(
            SignedRequests,
            state=lambda: state.get("gateway"),
            on_unsigned=metrics.unsigned.inc,
            on_refused=lambda code: metrics.signature_refusals.labels(code).inc(),
        ),
        # Inside it: sealed variables are opened after the signature over the sealed bytes checked.
        Middleware(EncryptedFields, unwrapper=lambda: state.get("unwrapper")),
    ]
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware)
