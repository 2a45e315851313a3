"""Prometheus metrics: a plain ASGI middleware timing every HTTP request, and the /metrics page."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

KNOWN_PATHS = ("/graphql", "/healthz", "/readyz", "/metrics")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "bff_http_requests", "HTTP requests by route and status", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "bff_http_request_seconds",
            "HTTP request latency",
            ["route"],
            registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.websockets = Gauge("bff_websocket_connections", "Open WebSocket connections", registry=self.registry)
        self.unsigned = Counter(
            "bff_unsigned_requests_total",
            "Requests to signed routes let through without a signature (development mode only)",
            registry=self.registry,
        )
        self.signature_refusals = Counter(
            "bff_signature_refusals_total", "Requests refused by the signature check, by code", ["code"],
            registry=self.registry,
        )
        self.events = Counter(
            "bff_events_published", "Events published to the broker", ["kind"], registry=self.registry
        )
        # What stalls every request in the process at once: garbage collections and anything else
        # that holds the event loop (a slow callback, a blocking call).
        pause_buckets = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
        self.gc_pauses = Histogram(
            "bff_gc_pause_seconds", "Garbage collection pauses", ["generation"], registry=self.registry,
            buckets=pause_buckets,
        )
        self.loop_lag = Histogram(
            "bff_event_loop_lag_seconds", "How late a 100 ms timer fires on the event loop", registry=self.registry,
            buckets=pause_buckets,
        )
        self._gc_started = 0.0

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pauses.labels(str(info["generation"])).observe(time.perf_counter() - self._gc_started)

    @contextlib.asynccontextmanager
    async def watching_the_process(self, interval: float = 0.1) -> Any:
        """While open: GC pauses and event-loop lag are recorded."""

        async def watch_loop() -> None:
            while True:
                started = time.perf_counter()
                await asyncio.sleep(interval)
                self.loop_lag.observe(max(0.0, time.perf_counter() - started - interval))

        gc.callbacks.append(self._on_gc)
        watcher = asyncio.create_task(watch_loop(), name="event-loop-lag")
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            gc.callbacks.remove(self._on_gc)

    def watch(self, collector: Any) -> None:
        """Adds a collector read at each scrape (e.g. certificate and key expiry)."""
        self.registry.register(collector)

    async def endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def _route(path: str) -> str:
    if path in KNOWN_PATHS:
        return path
    if path.startswith("/callbacks/"):
        return "/callbacks"
    if path.startswith("/sandbox/"):
        return "/sandbox"
    return "other"


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            self.metrics.websockets.inc()
            try:
                await self.app(scope, receive, send)
            finally:
                self.metrics.websockets.dec()
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = _route(scope["path"])
        status = 500
        started = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)
            self.metrics.requests.labels(route, str(status)).inc()
