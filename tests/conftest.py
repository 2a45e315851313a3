"""Test fixtures: real databases (SQLite always, PostgreSQL when DATABASE_URL is set), real brokers
(memory always, Redis when REDIS_URL is set), and the real app served by uvicorn on loopback."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette

from bff.app import create_app
from bff.asgi import server_options
from bff.settings import Settings
from clients.reference import GraphQLClient
from datasources.clock import SHANGHAI, FixedClock
from datasources.store.db import Database
from datasources.store.metadata import metadata
from realtime.broker import Broker, MemoryBroker, RedisBroker
from resolvers.deps import Deps
from tests.log_hygiene import LogHygiene

REQUIRE = os.environ.get("TEST_REQUIRE_SERVICES") == "1"
PG_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
if REQUIRE and not PG_URL.startswith("postgresql"):
    raise RuntimeError("TEST_REQUIRE_SERVICES=1 needs DATABASE_URL=postgresql+asyncpg://…")
if REQUIRE and not REDIS_URL:
    raise RuntimeError("TEST_REQUIRE_SERVICES=1 needs REDIS_URL=redis://…")

BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL.startswith("postgresql") else [])
BROKERS = ["memory"] + (["redis"] if REDIS_URL else [])
# Monday 23 November 2026, 09:10 in the hospital: the morning session is running.
MONDAY_0910 = datetime(2026, 11, 23, 9, 10, tzinfo=SHANGHAI)
TEST_MASTER_KEY = base64.b64encode(b"k" * 32).decode()


def pytest_configure(config: pytest.Config) -> None:
    """Every log record of the run is scanned for secrets and personal data (tests/log_hygiene.py)."""
    secrets = [(TEST_MASTER_KEY, "the tests' master key"), ("k" * 32, "the tests' master key (raw)")]
    config.pluginmanager.register(LogHygiene(secrets), "log-hygiene")


def _unavailable(what: str, exc: BaseException) -> None:
    if REQUIRE:
        pytest.fail(f"{what} is required (TEST_REQUIRE_SERVICES=1) but unreachable: {exc}")
    pytest.skip(f"{what} unreachable: {exc}")


@dataclass
class DatabaseTarget:
    backend: str
    url: str
    schema: str | None


@pytest.fixture(params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DatabaseTarget]:
    """An empty database with every table, on each configured backend."""
    if request.param == "sqlite":
        target = DatabaseTarget("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'bff.db'}", None)
    else:
        schema = f"t_{secrets.token_hex(6)}"
        target = DatabaseTarget("postgresql", PG_URL, schema)
        admin = Database(PG_URL, pool_size=1)
        try:
            async with admin.engine.begin() as conn:
                await conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        except OSError as exc:
            await admin.dispose()
            _unavailable("PostgreSQL", exc)
    db = Database(target.url, schema=target.schema, pool_size=1)
    async with db.engine.begin() as conn:
        # A fresh file or schema: no table exists, so skip the 72 existence checks (~0.2 s a test on PostgreSQL).
        await conn.run_sync(lambda sync: metadata.create_all(sync, checkfirst=False))
    await db.dispose()
    yield target
    if target.schema:
        async with admin.engine.begin() as conn:
            await conn.exec_driver_sql(f'DROP SCHEMA "{target.schema}" CASCADE')
        await admin.dispose()


@pytest.fixture
async def db(database: DatabaseTarget) -> AsyncIterator[Database]:
    d = Database(database.url, schema=database.schema)
    yield d
    await d.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(MONDAY_0910)


def make_settings(database: DatabaseTarget, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database.url,
        "database_schema": database.schema,
        "redis_url": None,
        "master_key": TEST_MASTER_KEY,
        "data_dir": tmp_path,
        "callback_secret": "test-callback-secret",
        "hold_sweep_seconds": 3600,
        # One namespace per test: runs sharing a Redis never hear each other's events.
        "broker_namespace": f"test-{secrets.token_hex(4)}",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database: DatabaseTarget, tmp_path: Path) -> Settings:
    return make_settings(database, tmp_path)


async def open_broker(kind: str, namespace: str | None = None) -> Broker:
    if kind == "memory":
        return MemoryBroker()
    broker = RedisBroker(REDIS_URL, namespace=namespace or f"test-{secrets.token_hex(4)}")
    try:
        await broker.start()
    except (OSError, ConnectionError) as exc:
        await broker.close()
        _unavailable("Redis", exc)
    return broker


@pytest.fixture(params=BROKERS)
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    b = await open_broker(request.param)
    yield b
    await b.close()


class LiveServer:
    """The real app under uvicorn on 127.0.0.1, in this event loop, so tests can also reach its parts."""

    def __init__(self, app: Starlette, settings: Settings | None = None) -> None:
        self.app = app
        options = server_options(settings or Settings())  # as main.py serves it (TLS when configured)
        self.scheme = "https" if options.get("ssl_certfile") else "http"
        self.server = uvicorn.Server(
            # log_config=None: uvicorn's loggers keep propagating to the root, where the log hygiene
            # plugin (tests/log_hygiene.py) reads every record of the run.
            uvicorn.Config(
                app, host="127.0.0.1", port=0, log_level="warning", log_config=None, lifespan="on", **options
            )
        )
        self.task: asyncio.Task[None] | None = None
        self.url = ""

    async def start(self) -> LiveServer:
        self.task = asyncio.create_task(self.server.serve())
        for _ in range(500):
            if self.server.started:
                break
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"{self.scheme}://127.0.0.1:{port}"
        return self

    @property
    def deps(self) -> Deps:
        deps: Deps = self.app.state.deps
        return deps

    def client(self, token: str | None = None) -> GraphQLClient:
        return GraphQLClient(self.url, token)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await asyncio.wait_for(self.task, timeout=15)


@pytest.fixture
async def server(settings: Settings, clock: FixedClock) -> AsyncIterator[LiveServer]:
    live = await LiveServer(create_app(settings, clock=clock)).start()
    yield live
    await live.stop()
