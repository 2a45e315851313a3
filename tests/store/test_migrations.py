"""Schema changes go through Alembic: the migrations build exactly the tables the code declares."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bff.migrate import upgrade
from datasources.store.db import Database
from datasources.store.metadata import metadata
from tests.conftest import DatabaseTarget


async def test_migrations_build_exactly_the_declared_tables(tmp_path: Path, database: DatabaseTarget) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'migrated.db'}" if database.backend == "sqlite" else database.url
    db = Database(url, schema=database.schema)
    if database.schema:
        async with db.engine.begin() as conn:  # the fixture made the tables; start from an empty schema
            await conn.run_sync(metadata.drop_all)
    await asyncio.to_thread(upgrade, url, database.schema)
    async with db.engine.connect() as conn:
        diff = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), metadata))
    await db.dispose()
    assert diff == []
