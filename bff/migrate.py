"""Applies the Alembic migrations: once, before any worker starts (``main.py``), never per worker."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str, schema: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["schema"] = schema
    return config


def upgrade(database_url: str, schema: str | None = None) -> None:
    """``schema``: PostgreSQL only, the search_path holding the tables (Settings.database_schema)."""
    # "heads": sandboxes developed side by side add their tables on branches of their own until merged.
    command.upgrade(alembic_config(database_url, schema), "heads")


if __name__ == "__main__":
    import sys

    from bff.settings import Settings

    url = sys.argv[1] if len(sys.argv) > 1 else Settings().database_url
    if len(sys.argv) > 2 and sys.argv[2] == "revision":
        command.revision(alembic_config(url), message=sys.argv[3], autogenerate=True)
    else:
        upgrade(url)
