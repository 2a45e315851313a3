"""A queue update reaches 1,000 subscribers: how long from the doctor's call to each client's receipt.

1. Set-up, before the server starts, with the project's own code against a fresh SQLite file:
   migrations and demo data (as main.py), then HIS staff open one big session for the demo doctor
   (``SandboxHISAdmin``), and 1,000 + FRONT patients (10 per account) get a card, book it and
   check in (``resolvers.patients``, ``resolvers.registration``), so all are in one queue.
2. The project runs as main.py runs it (one uvicorn process), with the Redis broker, then again
   with the in-memory broker.
3. 4 client processes (bench/fanout_client.py) open 250 WebSockets each: queueUpdates of the last
   1,000 registrations in the queue. The FRONT patients ahead of them have no subscriber, so each
   call moves every subscriber by one and every round has exactly 1,000 receipts.
4. Each round the demo doctor calls the next patient (``callNextPatient`` over HTTP). Latency per
   receipt is measured against the caller's wall clock just before sending the call (upper bound)
   and just after its response (lower bound; the event is published before the response is
   sent). With Redis, the event's own timestamp (``at``, stamped after the commit, when it is
   published) is read by a listener of the channel and gives the figure closest to "from commit".

    .venv/bin/python bench/fanout.py [--subscribers 1000] [--processes 4] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench import servers
from bench.markdown import replace_section
from bench.population import Api, issue_codes, person
from bff.app import build_sources, rules_of
from bff.demo import load as load_demo
from bff.keys import field_cipher
from bff.migrate import upgrade
from bff.settings import Settings
from datasources.clock import SHANGHAI, FixedClock, SystemClock, local_date, local_datetime
from datasources.his.sandbox import SandboxHISAdmin
from datasources.store.audit import AuditLog
from datasources.store.db import Database
from realtime import topics
from realtime.broker import MemoryBroker
from resolvers import medical_cards, patients, registration
from resolvers.deps import Deps
from resolvers.geofence import Point

BENCH = Path(__file__).resolve().parent
NAMESPACE = f"bench-fanout-{os.getpid()}"  # our own Redis channels, whoever else shares the server
FRONT = 20  # checked in ahead of the subscribers, called one per round
CALL = """mutation Call($id: ID!) {
  callNextPatient(input: {scheduleId: $id}) {
    __typename ... on PatientCalled { queueNumber } ... on UserError { code }
  }
}"""
# The set-up books "this morning" on a fixed clock; a server sweeping holds on the real clock would
# expire its slot locks between lock and confirm (HIS: LOCK_NOT_FOUND). No sweep during the bench.
NO_SWEEP = {"HOLD_SWEEP_SECONDS": "86400"}


def raise_fd_limit() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def prepare_session(data_dir: Path, total: int) -> tuple[str, str]:
    """Before the server starts: migrations, demo data, and one big session of the demo doctor today."""
    settings = Settings(data_dir=data_dir, database_url=servers.sqlite_url(data_dir), redis_url=None)
    await asyncio.to_thread(upgrade, settings.database_url)
    db = Database(settings.database_url, pool_size=2)
    await load_demo(db, await field_cipher(settings, db, SystemClock()), SystemClock())
    today = local_date(SystemClock().now())
    admin = SandboxHISAdmin(db)
    doctor = (await admin.doctor_ids())[0]  # the demo doctor's HIS id
    schedule_id, slot_ids = await admin.add_schedule(
        doctor, today, "AM", fee_fen=0, slots=[(local_datetime(today, 8), local_datetime(today, 23, 59), total)]
    )
    await db.dispose()
    return schedule_id, slot_ids[0]


async def populate(api: Api, data_dir: Path, total: int, slot_id: str) -> list[tuple[str, str]]:
    """Accounts log in over the API; their patients get cards, book and check in through the
    project's resolvers against the same database. Returns (token, registration id) in queue order."""
    settings = Settings(data_dir=data_dir, database_url=servers.sqlite_url(data_dir), redis_url=None)
    db = Database(settings.database_url, pool_size=2)
    cipher = await field_cipher(settings, db, SystemClock())
    real = SystemClock()
    # Book and check in "this morning", whatever the hour: the queue, not the clock, is measured.
    morning = FixedClock(local_datetime(local_date(real.now()), 7, 30))
    rules, policy = rules_of(settings)
    deps = Deps(
        db=db, cipher=cipher, sources=build_sources(settings, db, morning), broker=MemoryBroker(), clock=morning,
        audit=AuditLog(cipher.keyring), rules=rules, sessions=policy,
    )
    slot = (await deps.sources.his.slots_by_ids([slot_id]))[0]
    campus = (await deps.sources.his.schedules_by_ids([slot.schedule_id]))[0].campus_id
    where = next(c for c in await deps.sources.his.campuses() if c.id == campus)
    at_campus = Point(where.latitude, where.longitude, where.coordinate_system)
    accounts = (total + 9) // 10
    codes = [f"fanout-{i}" for i in range(accounts)]
    await issue_codes(db, codes)
    queue: list[tuple[str, str]] = []
    try:
        for a, code in enumerate(codes):
            token, account_id = await api.login(code)
            for j in range(min(10, total - a * 10)):
                data = person(100_000 + a * 10 + j)
                view = await patients.add_patient(
                    deps, account_id=account_id,
                    data=patients.PatientInput(
                        name=data["name"], relationship=data["relationship"], document_type="RESIDENT_ID",
                        document_number=data["documentNumber"], phone=data["phone"], ethnicity=data["ethnicity"],
                        occupation=data["occupation"], address=data["address"], address_detail=data["addressDetail"],
                    ),
                )
                await medical_cards.create_hospital_record(deps, account_id=account_id, patient_id=view.id)
                booked = await registration.book_appointment(
                    deps, account_id=account_id, patient_id=view.id, slot_id=slot_id
                )
                await registration.check_in(
                    deps, account_id=account_id, registration_id=booked.registration.id, location=at_campus
                )
                queue.append((token, booked.registration.id))
            if a % 20 == 0:
                print(f"  set-up: {len(queue)} of {total} patients booked and checked in", flush=True)
    finally:
        await db.dispose()
    return queue


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    xs = sorted(values)

    def p(q: float) -> float:
        return xs[min(len(xs) - 1, max(0, round(q / 100 * len(xs) + 0.5) - 1))]

    return {"n": len(xs), "p50": p(50), "p95": p(95), "p99": p(99), "max": xs[-1], "min": xs[0],
            "mean": statistics.fmean(xs)}


class Clients:
    def __init__(self, url: str, subscriptions: list[tuple[str, str]], processes: int, work: Path, tag: str) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        share = (len(subscriptions) + processes - 1) // processes
        for i in range(processes):
            part = work / f"subs-{tag}-{i}.json"
            part.write_text(json.dumps(subscriptions[i * share:(i + 1) * share]))
            self.procs.append(
                subprocess.Popen(
                    [servers.PYTHON, str(BENCH / "fanout_client.py"), url, str(part)], cwd=servers.ROOT,
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
                )
            )

    def _ask(self, proc: subprocess.Popen[str], command: str, answer: str) -> str:
        assert proc.stdin is not None and proc.stdout is not None
        if command:
            proc.stdin.write(command + "\n")
            proc.stdin.flush()
        while True:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"a client process ended (exit {proc.poll()})")
            if line.startswith(answer):
                return line[len(answer):].strip()

    def ready(self) -> int:
        total = 0
        for p in self.procs:
            n, _, failures = self._ask(p, "", "READY ").partition(" ")
            if failures and failures != "[]":
                print(f"  client failures: {failures}", flush=True)
            total += int(n)
        return total

    def count(self) -> int:
        return sum(int(self._ask(p, "COUNT", "COUNT ")) for p in self.procs)

    def dump(self) -> list[tuple[float, str, int]]:
        out: list[tuple[float, str, int]] = []
        for p in self.procs:
            out.extend(tuple(x) for x in json.loads(self._ask(p, "DUMP", "DUMP "))["received"])  # type: ignore[misc]
        return out

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, 15)
                    p.wait(10)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    os.killpg(p.pid, 9)


async def listen_redis(redis_url: str, topic: str, stamps: list[float], stop: asyncio.Event) -> None:
    """The event's own timestamp: stamped when published, right after HIS committed the call."""
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url, decode_responses=True)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(topic)
    try:
        while not stop.is_set():
            message = await pubsub.get_message(timeout=0.2)
            if message and message.get("type") == "message":
                stamps.append(datetime.fromisoformat(json.loads(message["data"])["at"]).timestamp())
    finally:
        await pubsub.aclose()
        await redis.aclose()


async def run_broker(
    broker: str, redis_url: str | None, data_dir: Path, work: Path, schedule_id: str,
    subscriptions: list[tuple[str, str]], processes: int, rounds: int, workers: int = 1,
) -> dict[str, Any]:
    port = servers.free_port()
    server = servers.project(
        data_dir, port, work, redis_url=redis_url, name=f"project-{broker}",
        extra_env={"BROKER_NAMESPACE": NAMESPACE, **NO_SWEEP},
        workers=workers,
    )
    clients: Clients | None = None
    base = f"http://{servers.HOST}:{port}"
    stamps: list[float] = []
    stop = asyncio.Event()
    listener = None
    try:
        await asyncio.to_thread(servers.wait_http, server, base + "/readyz", timeout=300)
        if redis_url:
            channel = f"{NAMESPACE}:{topics.queue(schedule_id)}"
            listener = asyncio.create_task(listen_redis(redis_url, channel, stamps, stop))
        started = time.monotonic()
        clients = Clients(base.replace("http", "ws", 1) + "/graphql", subscriptions, processes, work, broker)
        subscribed = await asyncio.to_thread(clients.ready)
        connect_s = time.monotonic() - started
        print(f"[{broker}] {subscribed} subscriptions open in {connect_s:.1f} s", flush=True)
        async with httpx.AsyncClient(timeout=30) as http:
            api = Api(base, http)
            token = await api.staff_login("doctor", "Ward-Round-2026")
            calls = []
            expected = 0
            for r in range(rounds):
                await asyncio.sleep(1.0)
                before = time.time()
                out = await api.call(CALL, {"id": schedule_id}, token)
                after = time.time()
                assert out["callNextPatient"]["__typename"] == "PatientCalled", out
                expected += subscribed
                deadline = time.monotonic() + 10
                while (got := await asyncio.to_thread(clients.count)) < expected and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                calls.append({"before": before, "after": after, "received": got - (expected - subscribed)})
                print(f"[{broker}] round {r + 1}: called number {out['callNextPatient']['queueNumber']}, "
                      f"{got - (expected - subscribed)} receipts", flush=True)
        received = await asyncio.to_thread(clients.dump)
    finally:
        stop.set()
        if listener is not None:
            await asyncio.gather(listener, return_exceptions=True)
        if clients is not None:
            clients.stop()
        server.stop()
    received.sort()
    rounds_out = []
    for i, call in enumerate(calls):
        end = calls[i + 1]["before"] if i + 1 < len(calls) else float("inf")
        times = [t for t, _, _ in received if call["before"] <= t < end]
        at = stamps[i] if i < len(stamps) else None
        rounds_out.append({
            "receipts": len(times),
            "call_ms": (call["after"] - call["before"]) * 1000,
            "from_before_ms": percentiles([(t - call["before"]) * 1000 for t in times]),
            "from_after_ms": percentiles([(t - call["after"]) * 1000 for t in times]),
            "from_event_at_ms": percentiles([(t - at) * 1000 for t in times]) if at else None,
        })
    return {"broker": broker, "subscribed": subscribed, "connect_s": round(connect_s, 1), "rounds": rounds_out}


def _server(workers: int) -> str:
    return "One project process" if workers == 1 else f"{workers} project processes sharing events through Redis"


def render(result: dict[str, Any]) -> str:
    lines = [
        "## Queue update fan-out to 1,000 subscribers (bench/fanout.py)",
        "",
        f"- Command: `{result['command']}`",
        f"- Date: {result['date']}; machine: {result['machine']}",
        f"- {_server(result.get('server_workers', 1))} (main.py: uvicorn, SQLite); "
        f"{result['processes']} client processes × "
        f"{result['subscribers'] // result['processes']} WebSockets (graphql-transport-ws, `websockets`), "
        f"each subscribed to `queueUpdates` of its own checked-in registration in one doctor session; "
        f"{FRONT} patients ahead of them without subscriber, so each `callNextPatient` moves all "
        f"{result['subscribers']}. fd limit raised to {result['fd_limit']}.",
        "- Latency of each receipt, ms: *upper* = from the caller's clock just before sending "
        "`callNextPatient`; *lower* = from just after its HTTP response (the event is published before "
        "the response is written, so receipts can precede it: negative); *event `at`* (Redis only) = "
        "from the timestamp the broker stamps on the event when publishing it after HIS's commit.",
        "",
        "| broker | round | receipts | call took | upper p50 / p95 / p99 / max | lower p50 / p99 / max "
        "| from event `at` p50 / p95 / p99 / max |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    verdicts = []
    for b in result["brokers"]:
        for i, r in enumerate(b["rounds"], 1):
            up, lo, ev = r["from_before_ms"], r["from_after_ms"], r["from_event_at_ms"]
            ev_s = f"{ev['p50']:.0f} / {ev['p95']:.0f} / {ev['p99']:.0f} / {ev['max']:.0f}" if ev else "-"
            lines.append(
                f"| {b['broker']} | {i} | {r['receipts']} | {r['call_ms']:.0f} | "
                f"{up['p50']:.0f} / {up['p95']:.0f} / {up['p99']:.0f} / {up['max']:.0f} | "
                f"{lo['p50']:.0f} / {lo['p99']:.0f} / {lo['max']:.0f} | {ev_s} |"
            )
        worst = max(r["from_before_ms"]["p99"] for r in b["rounds"])
        complete = all(r["receipts"] == b["subscribed"] == result["subscribers"] for r in b["rounds"])
        verdicts.append(
            f"| {b['broker']} | worst round p99 (upper bound) {worst:.0f} ms; all {result['subscribers']} "
            f"received in every round: {complete} | {'PASS' if worst <= 250 and complete else 'FAIL'} |"
        )
        lines.append(f"| {b['broker']} | | | | subscriptions opened in {b['connect_s']} s | | |")
    lines += ["", "Target of issue 2: p99 ≤ 250 ms from the commit of the call to each client's receipt.", "",
              "| broker | measured | verdict |", "|---|---|---|", *verdicts]
    return "\n".join(lines) + "\n"


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bff-fanout-"))
    data_dir = work / "data"
    try:
        total = args.subscribers + FRONT
        started = time.monotonic()
        schedule_id, slot_id = await prepare_session(data_dir, total)
        port = servers.free_port()
        setup_server = servers.project(data_dir, port, work, name="project-setup", extra_env=NO_SWEEP)
        try:
            base = f"http://{servers.HOST}:{port}"
            await asyncio.to_thread(servers.wait_http, setup_server, base + "/readyz", timeout=300)
            async with httpx.AsyncClient(timeout=30) as http:
                queue = await populate(Api(base, http), data_dir, total, slot_id)
        finally:
            setup_server.stop()
        print(f"set-up: session {schedule_id}, {len(queue)} checked in, {time.monotonic() - started:.0f} s", flush=True)
        subscriptions = queue[FRONT:]
        brokers = []
        plan = [("redis", args.redis_url), ("memory", None)] if args.redis_url else [("memory", None)]
        if args.server_workers > 1:
            plan = [(f"redis, {args.server_workers} server processes", args.redis_url)]
        for name, url in plan:
            brokers.append(
                await run_broker(
                    name, url, data_dir, work, schedule_id, subscriptions, args.processes, args.rounds,
                    workers=args.server_workers,
                )
            )
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return {"brokers": brokers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                        help="'' to skip the Redis broker")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--server-workers", type=int, default=1,
                        help="uvicorn worker processes of the project (more than 1: Redis broker only)")
    args = parser.parse_args()
    if args.server_workers > 1 and not args.redis_url:
        raise SystemExit("several server processes share events through Redis: give --redis-url")
    if args.rounds > FRONT:
        raise SystemExit(f"at most {FRONT} rounds")
    fd_limit = raise_fd_limit()
    result = asyncio.run(amain(args))
    from bench.run import machine

    m = machine()
    result.update(
        date=datetime.now(UTC).astimezone(SHANGHAI).isoformat(timespec="seconds"),
        machine=f"{m['nproc']} CPUs, Python {m['python']}", subscribers=args.subscribers,
        processes=args.processes, fd_limit=fd_limit, server_workers=args.server_workers,
    )
    result["command"] = (".venv/bin/python bench/fanout.py " + " ".join(sys.argv[1:])).strip()
    print(render(result))
    if not args.no_record:
        section = "fanout" if args.server_workers == 1 else "fanout-workers"
        (BENCH / f"{section}.json").write_text(json.dumps(result, indent=2) + "\n")
        replace_section(BENCH / "RESULTS.md", section, render(result))


if __name__ == "__main__":
    main()
