"""Where the home query's time goes: the project in-process, the home query N times under cProfile.

The app is built the way main.py builds it (migrations, demo data, ``create_app``), with the demo
patient's home page set up as bench/run.py does, and called through its ASGI interface (httpx's
ASGITransport), so the profile covers middleware, auth, GraphQL and the database but no sockets.
SQLite work runs in aiosqlite's worker thread, which cProfile does not see: it shows up as the
event loop waiting (``select``/``epoll``); the SQL statements per request are counted separately.

    .venv/bin/python bench/profile_home.py [-n 300] [--top 25]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from sqlalchemy import event

from bench import population as pop
from bench.markdown import replace_section
from bench.run import HOME, prepare_home
from bench.servers import sqlite_url
from bff.app import create_app
from bff.demo import load as load_demo
from bff.keys import field_cipher
from bff.migrate import upgrade
from bff.settings import Settings
from datasources.clock import SystemClock
from datasources.store.db import Database

BENCH = Path(__file__).resolve().parent

# Where a frame's own time is charged: the first matching fragment of its file path.
CATEGORIES = (
    ("graphql/", "graphql-core (validation, execution)"),
    ("strawberry/", "strawberry (schema, view, extensions, dataloader)"),
    ("sqlalchemy/", "SQLAlchemy (Core/ORM, statement compile, result rows)"),
    ("sqlmodel/", "SQLAlchemy (Core/ORM, statement compile, result rows)"),
    ("aiosqlite/", "aiosqlite (handing calls to its thread)"),
    ("cryptography/", "field decryption (cryptography)"),
    ("starlette/", "Starlette (request, response)"),
    ("httpx/", "benchmark client (httpx in-process)"),
    ("httpcore/", "benchmark client (httpx in-process)"),
    ("prometheus_client/", "metrics middleware"),
    ("asyncio/", "asyncio event loop (incl. waiting on the SQLite thread)"),
    ("selectors.py", "asyncio event loop (incl. waiting on the SQLite thread)"),
    ("json/", "JSON encode/decode"),
    ("/bff/", "project: bff/ (view, auth, loaders, metrics)"),
    ("/schema/", "project: schema/ (types, conversions)"),
    ("/resolvers/", "project: resolvers/"),
    ("/datasources/", "project: datasources/ (sandbox reads, cipher)"),
    ("/realtime/", "project: realtime/"),
)


def category(filename: str) -> str:
    for fragment, name in CATEGORIES:
        if fragment in filename:
            return name
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (C functions, e.g. dict/list/str ops)"
    return "other Python: " + (Path(filename).parent.name or filename)


async def profile(n: int, top: int, stats_file: str | None = None) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bff-profile-"))
    try:
        settings = Settings(
            database_url=sqlite_url(work),
            data_dir=work,
            redis_url=None,
            hold_sweep_seconds=3600,
        )
        await asyncio.to_thread(upgrade, settings.database_url)
        setup_db = Database(settings.database_url, pool_size=1)
        await load_demo(setup_db, await field_cipher(settings, setup_db, SystemClock()), SystemClock())
        app = create_app(settings)
        statements = 0
        async with app.router.lifespan_context(app):
            db: Database = app.state.deps.db

            @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
            def _count(*_: Any) -> None:
                nonlocal statements
                statements += 1

            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bff") as http:
                api = pop.Api("http://bff", http)
                token, notes = await prepare_home(api, setup_db)
                body = {"query": HOME.read_text(), "operationName": "PatientHome"}
                headers = {"authorization": f"Bearer {token}"}

                async def once() -> None:
                    r = await http.post("/graphql", json=body, headers=headers)
                    assert r.status_code == 200 and "errors" not in r.json(), r.text

                for _ in range(20):
                    await once()
                statements = 0
                started = time.perf_counter()
                for _ in range(n):
                    await once()
                plain = (time.perf_counter() - started) / n
                per_request_sql = statements / n
                profiler = cProfile.Profile()
                started = time.perf_counter()
                profiler.enable()
                for _ in range(n):
                    await once()
                profiler.disable()
                profiled = (time.perf_counter() - started) / n
        await setup_db.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if stats_file:  # for `python -m pstats FILE` (callers, callees)
        profiler.dump_stats(stats_file)
    stats = pstats.Stats(profiler)
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    by_category: dict[str, float] = defaultdict(float)
    for (filename, _line, _name), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        by_category[category(filename)] += tt
    put = "<method 'put_nowait' of '_queue.SimpleQueue' objects>"
    handoffs = sum(v[1] for k, v in stats.stats.items() if k[2] == put)  # type: ignore[attr-defined]
    handoff_s = sum(v[2] for k, v in stats.stats.items() if k[2] == put)  # type: ignore[attr-defined]
    poll_s = sum(v[2] for k, v in stats.stats.items() if "poll" in k[2] and "epoll" in k[2])  # type: ignore[attr-defined]
    top_own = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:15]  # type: ignore[attr-defined]
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(top)
    return {
        "n": n,
        "ms_per_request": round(plain * 1000, 2),
        "ms_per_request_profiled": round(profiled * 1000, 2),
        "sql_statements_per_request": per_request_sql,
        "home": notes,
        "aiosqlite_handoffs_per_request": handoffs / n,
        "handoff_share": handoff_s / total,
        "epoll_wait_share": poll_s / total,
        "top_own": [
            (f"{Path(f).name}:{line}({name})" if f != "~" else name, cc / n, tt / total)
            for (f, line, name), (_pc, cc, tt, _ct, _callers) in top_own
        ],
        "categories": sorted(((k, v / total) for k, v in by_category.items()), key=lambda kv: -kv[1]),
        "cumulative": out.getvalue(),
    }


def render(result: dict[str, Any]) -> str:
    lines = [
        "## Profile of the home query (bench/profile_home.py)",
        "",
        f"- Command: `.venv/bin/python bench/profile_home.py -n {result['n']}`: the app in-process "
        "(create_app, SQLite, demo data and home page as in run.py) called through ASGI, no sockets.",
        f"- {result['ms_per_request']} ms per home query unprofiled ({result['ms_per_request_profiled']} ms under "
        f"cProfile), {result['sql_statements_per_request']:g} SQL statements per request.",
        "",
        "Own time by area (share of the profiled main thread):",
        "",
        "| area | share |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {share:.1%} |" for name, share in result["categories"] if share >= 0.005]
    lines += [
        "",
        f"aiosqlite hands each call to its connection's thread through a queue: "
        f"{result['aiosqlite_handoffs_per_request']:.0f} hand-offs per home query; `SimpleQueue.put_nowait` "
        f"(where the event loop gives the GIL to the SQLite thread) holds {result['handoff_share']:.1%} of the "
        "main thread's time and `epoll.poll` (waiting for the SQLite thread's answers) "
        f"{result['epoll_wait_share']:.1%}.",
        "",
        "Top functions by own time:",
        "",
        "| function | calls per request | share |",
        "|---|---:|---:|",
    ]
    lines += [f"| `{name}` | {calls:.1f} | {share:.1%} |" for name, calls, share in result["top_own"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=300, help="home queries to profile (default 300)")
    parser.add_argument("--top", type=int, default=40, help="functions to print by cumulative time")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--stats", metavar="FILE", help="also write the raw cProfile statistics to FILE")
    args = parser.parse_args()
    result = asyncio.run(profile(args.n, args.top, args.stats))
    print(result["cumulative"])
    print(render(result))
    if not args.no_record:
        (BENCH / "profile.json").write_text(
            json.dumps({k: v for k, v in result.items() if k != "cumulative"}, indent=2, ensure_ascii=False) + "\n"
        )
        replace_section(BENCH / "RESULTS.md", "profile", render(result))


if __name__ == "__main__":
    main()
