"""The load benchmark (``make bench``): bare Starlette, out-of-the-box Strawberry, and the project.

Starts three servers on loopback, each in its own process: a bare Starlette JSON endpoint and an
out-of-the-box Strawberry ``{ hello }`` (bench/apps.py), and the project as ``main.py`` runs it
(fresh data dir and SQLite file, migrations, demo data, one uvicorn process, no access log). Sets
up the demo patient's home page and a crowd of patients to book with, then drives each scenario
with wrk (Lua scripts in bench/) at 1, 32 and 64 connections and records the figures in
bench/results.json and bench/RESULTS.md.

    .venv/bin/python bench/run.py              # 10 s per measurement (about 5 minutes in all)
    .venv/bin/python bench/run.py --quick      # 3 s per measurement
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from graphql import parse
from graphql.language import FieldNode, Visitor, visit

from bench import population as pop
from bench import servers
from bench.markdown import replace_section
from datasources.clock import SHANGHAI, local_datetime
from datasources.his.sandbox import SandboxHISAdmin
from datasources.store.db import Database

BENCH = Path(__file__).resolve().parent
HOME = BENCH / "home.graphql"
SCENARIOS = ("json", "hello", "home", "book")
SEQUENTIAL = "sequential"  # run_sequential's rows
CROWD_ACCOUNTS, CROWD_PER_ACCOUNT = 4, 8  # 32 patients: more than the places of any one session


@dataclass
class Measurement:
    scenario: str
    connections: int
    threads: int
    duration_s: float
    requests: int
    rps: float
    latency_ms: dict[str, float]
    errors: dict[str, int]
    outcomes: dict[str, int]
    generator: str = "wrk"

    @property
    def busy_share(self) -> float:
        """Σ latency ÷ (connections × duration). Each connection waits for its answer before sending
        again, so this cannot exceed 1 by more than one request's worth; when it does, the
        generator's latency histogram is not to be trusted (wrk's, at 1 connection, here)."""
        return self.latency_ms["mean"] * self.requests / 1000 / (self.connections * self.duration_s)

    def row(self) -> str:
        lat = self.latency_ms
        sock = sum(v for k, v in self.errors.items() if k != "status")
        mix = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())) or "-"
        return (
            f"| {self.scenario} | {self.connections} | {self.generator} | {self.rps:,.0f} | {lat['mean']:.1f} | "
            f"{lat['p50']:.1f} | {lat['p95']:.1f} | {lat['p99']:.1f} | {lat['max']:.1f} | {self.busy_share:.2f} | "
            f"{self.errors['status']} | {sock} | {mix} |"
        )


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is missing: installing it from Debian's packages (apt-get install -y wrk)", flush=True)
    apt = ["apt-get"] if os.geteuid() == 0 else ["sudo", "apt-get"]
    if subprocess.run([*apt, "install", "-y", "wrk"], check=False).returncode != 0:
        subprocess.run([*apt, "update"], check=True)
        subprocess.run([*apt, "install", "-y", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk could not be installed")
    return found


def count_fields(document: str) -> int:
    count = 0

    class Fields(Visitor):
        def enter_field(self, node: FieldNode, *_: Any) -> None:
            nonlocal count
            count += 1

    visit(parse(document), Fields())
    return count


def count_values(value: Any) -> int:
    """Scalar values in a response: what the server actually produced and serialized."""
    if isinstance(value, dict):
        return sum(count_values(v) for v in value.values())
    if isinstance(value, list):
        return sum(count_values(v) for v in value)
    return 1


def run_wrk(
    wrk: str, script: str, url: str, *, connections: int, duration: float, env: dict[str, str], name: str
) -> Measurement:
    threads = min(2, connections)
    argv = [
        wrk, "-t", str(threads), "-c", str(connections), "-d", f"{duration:g}s", "--timeout", "10s",
        "-s", str(BENCH / script), url,
    ]
    full_env = {**os.environ, "BENCH_DIR": str(BENCH), "BENCH_THREADS": str(threads), **env}
    out = subprocess.run(
        argv, cwd=servers.ROOT, env=full_env, capture_output=True, text=True, timeout=duration + 60, check=False
    )
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    seconds = data["duration_us"] / 1e6
    lat = {k: v / 1000 for k, v in data["latency_us"].items()}
    m = Measurement(
        scenario=name, connections=connections, threads=threads, duration_s=round(seconds, 2),
        requests=data["requests"], rps=data["requests"] / seconds, latency_ms=lat, errors=data["errors"],
        outcomes=data["outcomes"],
    )
    print(f"  {m.row()}", flush=True)
    return m


def raw_request(url: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The bytes of one POST, built once: the sequential client sends them as they are."""
    target = urlsplit(url)
    host, port = target.hostname or servers.HOST, target.port or 80
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (
        f"POST {target.path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-length: {len(body)}\r\n{head}\r\n"
    ).encode() + body


async def run_sequential(
    url: str, body: bytes, headers: dict[str, str], *, duration: float, name: str
) -> Measurement:
    """One client on one keep-alive connection, timed with the monotonic clock: the 1-client latency.

    wrk's histogram at 1 connection is at times inconsistent on this machine (its mean × requests
    exceeds the run's duration by 2-3 ×, which one sequential connection cannot do). This client
    is as light as a client can be (the request bytes built once, the answer read by its
    Content-Length, no JSON parsing), so its latency is the server's plus the loopback."""
    return await run_sequential_requests(
        url, itertools.repeat(raw_request(url, body, headers)), duration=duration, name=name
    )


async def run_sequential_requests(
    url: str, requests: Iterable[bytes], *, duration: float, name: str
) -> Measurement:
    """The sequential client sending the next of ``requests`` each time (signed requests are never
    sent twice); a finite list running out before ``duration`` shows as outcome ``corpus_exhausted``."""
    target = urlsplit(url)
    reader, writer = await asyncio.open_connection(target.hostname or servers.HOST, target.port or 80)
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    status_errors = 0
    try:
        started = time.perf_counter()
        for request in requests:
            sent = time.perf_counter()
            if sent - started >= duration:
                break
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            answer = await reader.readexactly(length)
            latencies.append((time.perf_counter() - sent) * 1000)
            status = int(head.split(b" ", 2)[1])
            if not 200 <= status <= 299:
                status_errors += 1
                kind = f"http_{status}"
            else:
                kind = "errors" if b'"errors"' in answer else "data"
            outcomes[kind] = outcomes.get(kind, 0) + 1
        else:
            outcomes["corpus_exhausted"] = 1
        seconds = time.perf_counter() - started
    finally:
        writer.close()
        await writer.wait_closed()
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[max(0, math.ceil(p / 100 * len(latencies)) - 1)]

    lat = {
        "min": latencies[0], "mean": sum(latencies) / len(latencies), "max": latencies[-1],
        "p50": pct(50), "p75": pct(75), "p90": pct(90), "p95": pct(95), "p99": pct(99), "p999": pct(99.9),
    }
    m = Measurement(
        scenario=name, connections=1, threads=1, duration_s=round(seconds, 2), requests=len(latencies),
        rps=len(latencies) / seconds, latency_ms=lat,
        errors={"connect": 0, "read": 0, "write": 0, "status": status_errors, "timeout": 0}, outcomes=outcomes,
        generator=SEQUENTIAL,
    )
    print(f"  {m.row()}", flush=True)
    return m


async def prepare_home(api: pop.Api, db: Database) -> tuple[str, dict[str, Any]]:
    """The demo patient's home page with data: upcoming appointments, one checked in (queue position)."""
    token, _ = await api.login("wx-demo-patient")
    mine = (await api.call(pop.MY_PATIENTS, token=token))["me"]["patients"]
    me = next(p for p in mine if p["hasHospitalRecord"] and not p["missingFields"])
    now = datetime.now(UTC)
    today = pop.today_local()
    schedules = await pop.schedules(api, today)
    notes: dict[str, Any] = {"booked": [], "checked_in": None}
    # Two appointments on later days, each with a different doctor.
    for offset in (1, 2, 3):
        day = (today + timedelta(days=offset)).isoformat()
        session = next(s for s in schedules if s["date"] == day and any(x["remaining"] for x in s["slots"]))
        slot = next(x for x in session["slots"] if x["remaining"])
        out = await pop.book(api, token, me["id"], slot["id"])
        assert out["__typename"] == "AppointmentBooked", out
        notes["booked"].append(out["registration"]["id"])
    # One visit today, checked in, so the home page shows a live queue position.
    later_today = [
        (s, x) for s in schedules if s["date"] == today.isoformat() for x in s["slots"]
        if x["remaining"] and datetime.fromisoformat(x["startsAt"]) > now + timedelta(minutes=2)
    ]
    if not later_today:
        later_today = await _evening_session(db, api, today, now)
    if later_today:
        session, slot = later_today[0]
        out = await pop.book(api, token, me["id"], slot["id"])
        assert out["__typename"] == "AppointmentBooked", out
        registration_id = out["registration"]["id"]
        notes["booked"].append(registration_id)
        location = (await pop.campus_locations(api))[session["campusId"]]
        checked = await pop.check_in(api, token, registration_id, location)
        notes["checked_in"] = {"registration": registration_id, "outcome": checked["__typename"]}
    return token, notes


async def _evening_session(db: Database, api: pop.Api, today: Any, now: datetime) -> list[tuple[dict, dict]]:
    """No slot left today (the benchmark runs late): HIS staff open an extra session until 23:59."""
    end = local_datetime(today, 23, 59)
    start = now.astimezone(SHANGHAI) + timedelta(minutes=5)
    if start >= end:
        return []
    admin = SandboxHISAdmin(db)
    doctor = (await admin.doctor_ids())[1]
    await admin.add_schedule(doctor, today, "PM", fee_fen=1000, slots=[(start, end, 10)])
    schedules = await pop.schedules(api, today, days=1)
    return [(s, x) for s in schedules for x in s["slots"] if datetime.fromisoformat(x["startsAt"]) >= start]


async def write_bookings(db: Database, crowd: pop.Crowd, path: Path, limit: int) -> int:
    """The bookings still possible, as wrk request lines: token, tab, JSON body."""
    plan = await pop.booking_plan(
        db, crowd, not_before=datetime.now(UTC) + timedelta(hours=1), exclude_days={pop.today_local()}
    )
    with path.open("w") as f:
        for patient, slot_id in plan[:limit]:
            body = {"query": pop.BOOK, "variables": {"input": {"patientId": patient.patient_id, "slotId": slot_id}}}
            f.write(f"{patient.token}\t{json.dumps(body, separators=(',', ':'))}\n")
    return min(len(plan), limit)


async def settle(db: Database) -> None:
    """Waits until bookings still in flight when wrk stopped have finished, so the next list is exact."""
    deadline = time.monotonic() + 15.0
    last = await registrations_count(db)
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        now = await registrations_count(db)
        if now == last:
            return
        last = now


async def registrations_count(db: Database) -> int:
    from sqlalchemy import func, select

    from datasources.his.tables import HisRegistration

    async with db.reading() as s:
        return int((await s.execute(select(func.count()).select_from(HisRegistration))).scalar_one())


def machine() -> dict[str, str]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "wrk": ((wrk_version.stdout or wrk_version.stderr).splitlines() or [""])[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per scenario (default 2)")
    parser.add_argument("--quick", action="store_true", help="3 s per measurement, 1 s warm-up")
    parser.add_argument("--connections", default="1,32,64", help="comma-separated (default 1,32,64)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="subset of json,hello,home,book")
    parser.add_argument("--no-record", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir and logs")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup = 3.0, 1.0
    levels = [int(x) for x in args.connections.split(",")]
    wanted = [s for s in args.scenarios.split(",") if s]
    wrk = ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="bff-bench-"))
    data_dir = work / "data"
    ports = {name: servers.free_port() for name in ("json", "hello", "project")}
    procs = [
        servers.uvicorn_app("json-app", "bench.apps:json_app", ports["json"], work),
        servers.uvicorn_app("hello-app", "bench.apps:hello_app", ports["hello"], work),
        servers.project(data_dir, ports["project"], work),
    ]
    started = time.monotonic()
    try:
        with servers.running(procs):
            results = asyncio.run(_bench(args, wrk, work, ports, procs, levels, wanted))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    command = "make bench  # = .venv/bin/python bench/run.py " + " ".join(sys.argv[1:])
    results["command"] = command.rstrip()
    print(render(results))
    if not args.no_record:
        (BENCH / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
        replace_section(BENCH / "RESULTS.md", "load", render(results))
        print(f"recorded in {BENCH / 'RESULTS.md'} and {BENCH / 'results.json'}")


async def _bench(
    args: argparse.Namespace, wrk: str, work: Path, ports: dict[str, int], procs: list[servers.Process],
    levels: list[int], wanted: list[str],
) -> dict[str, Any]:
    base = {k: f"http://{servers.HOST}:{p}" for k, p in ports.items()}
    servers.wait_http(procs[0], base["json"] + "/json")
    servers.wait_http(procs[1], base["hello"] + "/graphql?query=%7Bhello%7D")
    servers.wait_http(procs[2], base["project"] + "/readyz", timeout=300)
    db = Database(servers.sqlite_url(work / "data"), pool_size=2)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            api = pop.Api(base["project"], http)
            print("setting up: demo patient's home page, a crowd of patients to book with", flush=True)
            token, home_notes = await prepare_home(api, db)
            crowd = await pop.make_crowd(
                api, db, accounts=CROWD_ACCOUNTS, per_account=CROWD_PER_ACCOUNT, prefix="bench-booker"
            )
            home_query = HOME.read_text()
            home_body = work / "home.json"
            home_body.write_text(json.dumps({"query": home_query, "operationName": "PatientHome"}))
            home = await api.call(home_query, token=token)
            home_notes.update(
                fields_in_document=count_fields(home_query), values_in_response=count_values(home),
                patients=len(home["me"]["patients"]), upcoming=len(home["me"]["registrations"]["edges"]),
                with_queue_position=sum(1 for e in home["me"]["registrations"]["edges"] if e["node"]["queuePosition"]),
                unread=home["me"]["unreadNotificationCount"],
            )
            print(f"home page: {home_notes}", flush=True)

            sequential = {  # what the 1-client latency is judged on (see run_sequential)
                "hello": (base["hello"] + "/graphql", b'{"query": "{ hello }"}', {"content-type": "application/json"}),
                "home": (
                    base["project"] + "/graphql", home_body.read_bytes(),
                    {"content-type": "application/json", "authorization": f"Bearer {token}"},
                ),
            }
            targets = {
                "json": ("json.lua", base["json"] + "/json", {}),
                "hello": ("hello.lua", base["hello"] + "/graphql", {}),
                "home": (
                    "home.lua", base["project"] + "/graphql", {"BENCH_BODY": str(home_body), "BENCH_TOKEN": token}
                ),
                "book": ("book.lua", base["project"] + "/graphql", {"BENCH_BOOKINGS": str(work / "bookings.tsv")}),
            }
            measurements: list[Measurement] = []
            booking: dict[str, Any] = {"planned": {}, "registrations_before": await registrations_count(db)}
            for name in wanted:
                script, url, env = targets[name]
                print(f"{name}: warm-up {args.warmup:g} s", flush=True)
                if name == "book":
                    await write_bookings(db, crowd, work / "bookings.tsv", 5000)
                run_wrk(wrk, script, url, connections=32, duration=args.warmup, env=env, name=name)
                for c in levels:
                    if name == "book":
                        await settle(db)
                        booking["planned"][c] = await write_bookings(db, crowd, work / "bookings.tsv", 40000)
                    measurements.append(
                        run_wrk(wrk, script, url, connections=c, duration=args.duration, env=env, name=name)
                    )
                    if c == 1 and name in sequential:
                        seq_url, seq_body, seq_headers = sequential[name]
                        measurements.append(
                            await run_sequential(seq_url, seq_body, seq_headers, duration=args.duration, name=name)
                        )
            booking["registrations_after"] = await registrations_count(db)
            home_after = await api.call(home_query, token=token)
            home_notes["same_answer_after_load"] = home_after == home
    finally:
        await db.dispose()
    return {
        "date": datetime.now(UTC).astimezone(SHANGHAI).isoformat(timespec="seconds"),
        "machine": machine(),
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "home": home_notes,
        "booking": booking,
        "measurements": [m.__dict__ for m in measurements],
    }


def _find(
    results: dict[str, Any], scenario: str, connections: int, generator: str = "wrk"
) -> dict[str, Any] | None:
    return next(
        (
            m for m in results["measurements"]
            if m["scenario"] == scenario and m["connections"] == connections
            and m.get("generator", "wrk") == generator
        ),
        None,
    )


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "## Load benchmark (bench/run.py)",
        "",
        f"- Command: `{results.get('command', 'make bench')}` (from the repository root; took "
        f"{results.get('elapsed_s', '?')} s)",
        f"- Date: {results['date']}",
        f"- Machine: {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, {m['platform']}, {m['wrk']}; "
        "wrk runs on the same machine as the servers (loopback), threads = min(2, connections).",
        f"- Each figure: {results['duration_s']:g} s of wrk after a {results['warmup_s']:g} s warm-up per scenario; "
        "latency in ms (wrk's own histogram, printed by `done()` in bench/report.lua).",
        "- Servers, one uvicorn process each (uvloop, httptools, no access log): `json` a bare Starlette "
        "JSON endpoint; `hello` Strawberry out of the box, `{ hello }`, no caches or extensions; "
        "`home` and `book` the project as `main.py` runs it (fresh SQLite file, migrations, demo data).",
    ]
    h = results["home"]
    lines += [
        f"- `home`: bench/home.graphql, {h['fields_in_document']} fields in the document, {h['values_in_response']} "
        f"values in the response ({h['patients']} patients with cards, {h['upcoming']} upcoming registrations with "
        f"doctor, department, campus, {h['with_queue_position']} with a queue position, unread count "
        f"{h['unread']}), demo patient `wx-demo-patient`, bearer token; same answer after the load: "
        f"{h.get('same_answer_after_load')}.",
    ]
    b = results["booking"]
    made = b.get("registrations_after", 0) - b.get("registrations_before", 0)
    lines += [
        f"- `book`: `bookAppointment` by 32 patients (4 accounts, credit GOOD) over every slot of the next 13 days "
        f"that can still take them (one registration per patient and session, within capacity); wrk takes the "
        f"next line of a list run.py writes before each run (planned: {b.get('planned')}). "
        f"Registrations created during the booking runs (warm-up included): {made}.",
        "",
        "| scenario | clients | generator | req/s | mean | p50 | p95 | p99 | max | Σ latency ÷ (clients × time) "
        "| non-2xx | socket errors | responses |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    lines += [Measurement(**x).row() for x in results["measurements"]]
    lines += [
        "",
        "The Σ latency column checks each generator against itself: a client that waits for each answer "
        "cannot be busy more than all of the time, so a figure well above 1 means its latency histogram "
        "is wrong. wrk's at 1 connection at times is (1.3-3 × on this machine, for `hello` and `home` "
        "alike, while the sequential client on the same server right after stays at 1.0): either its "
        "latencies or its request count is then wrong, and its figures cannot tell which. The 1-client "
        "targets, ratio and latency, are therefore judged on the `sequential` rows (`run_sequential`): "
        "one client on one keep-alive connection, the monotonic clock, request bytes built once, answers "
        "read by their length.",
    ]
    lines += ["", "Ratios (same run, same number of clients):", ""]
    lines += ["| clients | hello ÷ json | home ÷ hello | book ÷ hello | home ÷ json |", "|---:|---:|---:|---:|---:|"]
    levels = sorted({x["connections"] for x in results["measurements"]})
    for c in levels:
        j, hl, hm, bk = (_find(results, s, c) for s in SCENARIOS)

        def ratio(a: dict[str, Any] | None, z: dict[str, Any] | None) -> str:
            return f"{a['rps'] / z['rps']:.2f}" if a and z else "-"

        lines.append(f"| {c} | {ratio(hl, j)} | {ratio(hm, hl)} | {ratio(bk, hl)} | {ratio(hm, j)} |")
    lines += ["", "Targets of issue 2 (one process, this machine):", ""]
    lines += ["| target | measured | verdict |", "|---|---|---|"]
    for c in levels:
        generator = SEQUENTIAL if c == 1 and _find(results, "home", 1, SEQUENTIAL) else "wrk"
        hl, hm = _find(results, "hello", c, generator), _find(results, "home", c, generator)
        if hl and hm:
            r = hm["rps"] / hl["rps"]
            lines.append(
                f"| home ≥ 0.6 × out-of-the-box hello, {c} client{'s' if c > 1 else ''} | {hm['rps']:,.0f} ÷ "
                f"{hl['rps']:,.0f} = {r:.2f} ({generator}) | {'PASS' if r >= 0.6 else 'FAIL'} |"
            )
    for c, limit, generator in ((32, 100.0, "wrk"), (1, 15.0, SEQUENTIAL)):
        hm = _find(results, "home", c, generator) or _find(results, "home", c)
        if hm:
            p99 = hm["latency_ms"]["p99"]
            lines.append(
                f"| home p99 ≤ {limit:g} ms at {c} client{'s' if c > 1 else ''} | {p99:.1f} ms "
                f"({hm.get('generator', 'wrk')}) | {'PASS' if p99 <= limit else 'FAIL'} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
