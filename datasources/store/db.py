"""The database: one async engine, read sessions and write sessions.

SQLite is the embedded default: WAL so readers never wait for the writer, a busy timeout so writers
queue instead of failing, and write transactions that begin IMMEDIATE so two writers never both
hold a read lock and deadlock on the upgrade. PostgreSQL needs none of this.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

SQLITE_BUSY_TIMEOUT_S = 30


def _sqlite_file(url: str) -> Path | None:
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database)


def create_engine(url: str, *, pool_size: int = 10, schema: str | None = None) -> AsyncEngine:
    if url.startswith("sqlite"):
        path = _sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S},
            pool_size=pool_size,
            max_overflow=10,
            hide_parameters=True,
        )
        _configure_sqlite(engine)
        _keep_statements_out_of_driver_logs()
        return engine
    connect_args = {"server_settings": {"search_path": schema}} if schema else {}
    # hide_parameters: a database error's message (logged with its traceback when a request fails)
    # would otherwise quote the statement's parameters, i.e. personal data and ciphertexts.
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=20, connect_args=connect_args, hide_parameters=True
    )


class _OperationNamesOnly(logging.Filter):
    """aiosqlite logs each call it hands to its thread with the call's arguments: the SQL and its
    parameters. Keep the operation's name."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                getattr(a.func, "__name__", "operation") if isinstance(a, functools.partial) else a
                for a in record.args
            )
        return True


def _keep_statements_out_of_driver_logs() -> None:
    """aiosqlite's DEBUG lines (two per statement) carry every parameter, personal data included, and
    tell an operator nothing: the logger stays at INFO unless configured otherwise, and whatever it
    logs loses the arguments. Idempotent."""
    logger = logging.getLogger("aiosqlite")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    if not any(isinstance(f, _OperationNamesOnly) for f in logger.filters):
        logger.addFilter(_OperationNamesOnly())


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from the driver so BEGIN can say IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Deleted and overwritten content is zeroed, not left in free space (等保三级 剩余信息保护);
        # many builds default to it, not all.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode is not None:
            conn.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """Owns the engine; hands out sessions. Built once in the app's lifespan, never at import."""

    def __init__(self, url: str, *, pool_size: int = 10, schema: str | None = None) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size, schema=schema)
        self.is_sqlite = url.startswith("sqlite")
        writer = self.engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else self.engine
        # SQLite reads run in autocommit: no BEGIN and no transaction to end, two round trips to the
        # driver's thread fewer per read. Each statement still sees a consistent snapshot.
        reader = self.engine.execution_options(sqlite_begin=None) if self.is_sqlite else self.engine
        self._read = async_sessionmaker(reader, expire_on_commit=False)
        self._write = async_sessionmaker(writer, expire_on_commit=False)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session for reads: no write lock taken on SQLite."""
        async with self._read() as session:
            yield session

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        """A transaction that commits on success and rolls back on any error."""
        async with self._write() as session, session.begin():
            yield session

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
