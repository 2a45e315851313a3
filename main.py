"""Entry point: settings → migrations (once) → demo data (once) → uvicorn."""

from __future__ import annotations

import argparse
import asyncio
import logging

import uvicorn

from bff.asgi import server_options
from bff.demo import LOGINS
from bff.demo import load as load_demo
from bff.keys import field_cipher
from bff.migrate import upgrade
from bff.settings import Settings
from datasources.clock import SystemClock
from datasources.store.db import Database


async def _prepare(settings: Settings) -> bool:
    db = Database(settings.database_url, pool_size=1, schema=settings.database_schema)
    try:
        clock = SystemClock()
        return await load_demo(db, await field_cipher(settings, db, clock), clock)
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description="Hospital GraphQL BFF")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--no-demo", action="store_true", help="do not load demo data")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    if args.workers > 1 and not settings.redis_url:
        parser.error(
            "several workers share events, cache invalidations and logouts through Redis: set REDIS_URL "
            "(e.g. redis://127.0.0.1:6379/0) or run one worker"
        )
    upgrade(settings.database_url, settings.database_schema)
    if settings.loads_demo_data and not args.no_demo:
        fresh = asyncio.run(_prepare(settings))
        print("\nDemo data " + ("loaded." if fresh else "already present.") + " Log in at /graphql with:")
        for login in LOGINS:
            print(f"  {login.who:<36} mutation {{ {login.how} {{ ... on LoginSuccess {{ token }} }} }}")
        print('Then set the header  {"Authorization": "Bearer <token>"}  in GraphiQL.\n')
    uvicorn.run(
        "bff.asgi:app", factory=True, host=settings.host, port=settings.port, workers=args.workers,
        log_level="info", **server_options(settings),
    )


if __name__ == "__main__":
    main()
