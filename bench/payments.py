"""A payment end to end, through the project as `make run` starts it (one process, SQLite, the
sandboxes), driven from this separate process like a mini-program and its payer.

One payment: `payBills` (the BFF opens a WeChat Pay JSAPI order) → the payer pays on the order's page
(`POST /pay/{orderNo}/sandbox-pay`: the WeChat Pay sandbox inside the server delivers the signed,
AEAD-sealed notification back to the BFF over HTTP; the BFF verifies it, asks the channel, writes
back to the HIS and tells the patient) → the client reads `me.payment` until it says SETTLED.
Measured from the client: the whole payment (all three steps), and `payBills` alone; sequentially
and with concurrent payers. Then 20 concurrent `payBills` with one idempotency key: one order, and
how long until all 20 answered.

    .venv/bin/python bench/payments.py [--payments 120] [--concurrency 1,8] [--no-record]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from sqlalchemy import func, select
from sqlmodel import col

from bench import population as pop
from bench import servers
from bench.markdown import replace_section
from datasources.clock import SystemClock
from datasources.his import billing as b
from datasources.his.billing_sandbox import SandboxHISBillingAdmin
from datasources.his.tables import HisCard
from datasources.store.db import Database
from datasources.store.models import PaymentOrder

BENCH = Path(__file__).resolve().parent
PAY_BILLS = """
mutation ($ids: [ID!]!, $key: String!) {
  payBills(input: {billIds: $ids, idempotencyKey: $key}) {
    __typename ... on PaymentStarted { order { orderNo } link } ... on UserError { code message }
  }
}"""
PAYMENT = "query ($no: String!) { me { payment(orderNo: $no) { status } } }"
DRUG = b.BillItem("Y001", "阿莫西林胶囊", "0.25g*24粒", "盒", "2", 1850, 3700, "XJ01CAA040", "A")


def machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "")
    return {"nproc": str(os.cpu_count()), "cpu": cpu, "python": platform.python_version()}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def bills_for(db: Database, crowd: pop.Crowd, each: int) -> list[tuple[str, list[str]]]:
    """``each`` bills per patient, as the HIS would have them after the visit: (token, bill ids)."""
    his_ids = await pop._his_patient_ids(db, [p.patient_id for p in crowd.patients])
    admin = SandboxHISBillingAdmin(db)
    out = []
    for patient in crowd.patients:
        his_id = his_ids[patient.patient_id]
        async with db.reading() as s:
            card = (await s.execute(select(HisCard).where(col(HisCard.patient_id) == his_id))).scalars().first()
        assert card is not None
        ids = [
            await admin.add_bill(str(his_id), card.card_no, department_id="1", doctor_id="1", category=b.PRESCRIPTION,
                                 title="处方", items=[DRUG], at=datetime.now(UTC))
            for _ in range(each)
        ]
        out.append((patient.token, ids))
    return out


async def one_payment(api: pop.Api, http: httpx.AsyncClient, token: str, bill_id: str) -> tuple[float, float]:
    started = time.perf_counter()
    out = (await api.call(PAY_BILLS, {"ids": [bill_id], "key": str(uuid.uuid4())}, token))["payBills"]
    if out["__typename"] != "PaymentStarted":
        raise pop.ApiError(f"payBills: {out}")
    opened = time.perf_counter()
    paid = await http.post(out["link"] + "/sandbox-pay")
    if paid.status_code != 303:
        raise pop.ApiError(f"sandbox pay: {paid.status_code}")
    for _ in range(2000):
        status = (await api.call(PAYMENT, {"no": out["order"]["orderNo"]}, token))["me"]["payment"]["status"]
        if status == "SETTLED":
            break
        await asyncio.sleep(0.005)
    else:
        raise pop.ApiError(f"order {out['order']['orderNo']} did not settle")
    done = time.perf_counter()
    return (done - started) * 1000, (opened - started) * 1000


async def run_level(api: pop.Api, http: httpx.AsyncClient, work: list[tuple[str, str]], concurrency: int) -> dict:
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    for item in work:
        queue.put_nowait(item)
    whole: list[float] = []
    opening: list[float] = []

    async def payer() -> None:
        while not queue.empty():
            token, bill_id = queue.get_nowait()
            total, open_ms = await one_payment(api, http, token, bill_id)
            whole.append(total)
            opening.append(open_ms)

    started = time.perf_counter()
    await asyncio.gather(*(payer() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency, "payments": len(whole), "per_s": round(len(whole) / elapsed, 1),
        "p50_ms": round(statistics.median(whole), 1), "p99_ms": round(percentile(whole, 0.99), 1),
        "open_p50_ms": round(statistics.median(opening), 1), "open_p99_ms": round(percentile(opening, 0.99), 1),
    }


async def duplicates(api: pop.Api, db: Database, token: str, bill_id: str, n: int = 20) -> dict:
    key = str(uuid.uuid4())
    started = time.perf_counter()
    answers = await asyncio.gather(
        *(api.call(PAY_BILLS, {"ids": [bill_id], "key": key}, token) for _ in range(n)), return_exceptions=True
    )
    elapsed = (time.perf_counter() - started) * 1000
    numbers = {a["payBills"]["order"]["orderNo"] for a in answers if isinstance(a, dict) and "order" in a["payBills"]}
    async with db.reading() as s:
        orders = (await s.execute(
            select(func.count()).select_from(PaymentOrder)
            .where(col(PaymentOrder.subject) == json.dumps({"billIds": [bill_id]}, sort_keys=True))
        )).scalar_one()
    return {"requests": n, "answered_ms": round(elapsed, 1), "order_numbers": len(numbers), "orders_in_db": orders}


async def _bench(args: argparse.Namespace, port: int, data_dir: Path, schema: str | None) -> dict[str, Any]:
    base = f"http://{servers.HOST}:{port}"
    db = Database(args.postgres, schema=schema) if args.postgres else Database(servers.sqlite_url(data_dir))
    levels = [int(x) for x in args.concurrency.split(",")]
    try:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as http:
            api = pop.Api(base, http)
            crowd = await pop.make_crowd(api, db, accounts=args.patients, per_account=1, prefix="pay")
            per_patient = -(-args.payments * len(levels) // args.patients) + 1
            bills = await bills_for(db, crowd, per_patient)
            work = [(token, bill_id) for token, ids in bills for bill_id in ids[1:]]
            await run_level(api, http, work[:10], 1)  # warm-up
            work = work[10:]
            results = []
            for level in levels:
                chunk, work = work[: args.payments], work[args.payments:]
                results.append(await run_level(api, http, chunk, level))
                print(results[-1])
            token, ids = bills[0]
            dup = await duplicates(api, db, token, ids[0])
            print(dup)
    finally:
        await db.dispose()
    return {"levels": results, "duplicates": dup}


async def _schema(url: str, statement: str) -> None:
    db = Database(url, pool_size=1)
    try:
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql(statement)
    finally:
        await db.dispose()


def render(r: dict[str, Any]) -> str:
    lines = [
        f"## Payments end to end, {r['database']} (bench/payments.py)",
        "",
        f"Recorded {r['recorded']} on {r['machine']['cpu']} ({r['machine']['nproc']} cores), "
        f"one server process (`main.py`: {r['database']}, the sandboxes), the client in another process.",
        f"Command: `{r['command']}`",
        "",
        "A payment = payBills (JSAPI order opened at the WeChat Pay sandbox) → the payer pays on the order's page "
        "(the sandbox notifies the BFF over HTTP: signature verified, resource decrypted, order queried, HIS "
        "written back, patient notified) → the client sees SETTLED.",
        "",
        "| concurrent payers | payments | payments/s | whole payment p50 / p99 ms | payBills p50 / p99 ms |",
        "|---|---|---|---|---|",
    ]
    for x in r["levels"]:
        lines.append(
            f"| {x['concurrency']} | {x['payments']} | {x['per_s']} | {x['p50_ms']} / {x['p99_ms']} | "
            f"{x['open_p50_ms']} / {x['open_p99_ms']} |"
        )
    d = r["duplicates"]
    lines += [
        "",
        f"{d['requests']} concurrent payBills with one idempotency key: all answered in {d['answered_ms']} ms, "
        f"{d['order_numbers']} order number returned, {d['orders_in_db']} order in the database.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=120, help="payments per concurrency level (default 120)")
    parser.add_argument("--patients", type=int, default=16, help="paying patients (default 16)")
    parser.add_argument("--concurrency", default="1,8", help="comma-separated (default 1,8)")
    parser.add_argument("--postgres", metavar="URL", default="",
                        help="run the server on PostgreSQL (a fresh schema in this database) instead of SQLite")
    parser.add_argument("--no-record", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bff-pay-bench-"))
    port = servers.free_port()
    schema = f"bench_pay_{uuid.uuid4().hex[:8]}" if args.postgres else None
    extra = {"DATABASE_URL": args.postgres, "DATABASE_SCHEMA": schema or ""} if args.postgres else None
    if schema:
        asyncio.run(_schema(args.postgres, f'CREATE SCHEMA "{schema}"'))
    proc = servers.project(work / "data", port, work, name="project", extra_env=extra)
    try:
        with servers.running([proc]):
            servers.wait_http(proc, f"http://{servers.HOST}:{port}/readyz")
            results = asyncio.run(_bench(args, port, work / "data", schema))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if schema:
            asyncio.run(_schema(args.postgres, f'DROP SCHEMA "{schema}" CASCADE'))
    results["database"] = "PostgreSQL" if args.postgres else "SQLite"
    results["recorded"] = datetime.now(SystemClock().now().tzinfo).strftime("%Y-%m-%d")
    results["machine"] = machine()
    results["command"] = ".venv/bin/python bench/payments.py " + " ".join(sys.argv[1:])
    print(render(results))
    if not args.no_record:
        name = "payments-postgresql.json" if args.postgres else "payments.json"
        (BENCH / name).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
        section = "payments" + ("-postgresql" if args.postgres else "")
        replace_section(BENCH / "RESULTS.md", section, render(results))
        print(f"recorded in {BENCH / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
