"""Alembic environment: async engines (aiosqlite, asyncpg), run once before the server starts."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from datasources.store.db import create_engine
from datasources.store.metadata import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _online() -> None:
    engine = create_engine(
        config.get_main_option("sqlalchemy.url") or "", pool_size=1, schema=config.attributes.get("schema")
    )
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_online())
