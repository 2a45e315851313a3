"""What each cryptographic operation of the gateway costs, per call, on this machine.

The figures size the request path: every signed request is one signature verification, every
sealed field one seal or open, every audit record one SM4-GCM seal. Native libraries (tongsuopy
for SM2, ``cryptography`` for the rest) are what the project runs; gmssl, the pure-Python
reference the tests use, is measured alongside to show why it stays in the tests.

Each operation runs in batches sized to about ``--batch-ms`` (after untimed calls for a quarter of
that, which warm up and size the batch); the figure is the median over the batches of (batch time / calls), with
``time.perf_counter``. The whole run takes about 15 seconds.

    .venv/bin/python bench/crypto.py [--batch-ms 40] [--batches 7] [--no-record]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gmssl import sm2, sm4

from bench.markdown import replace_section
from datasources.clock import SHANGHAI
from datasources.crypto import primitives as p

BENCH = Path(__file__).resolve().parent
KB, MB = os.urandom(1024), os.urandom(1024 * 1024)
SIZES = (("1 KB", KB), ("1 MB", MB))
SEAL_LABELS: dict[p.SealAlgorithm, str] = {"SM4GCM": "SM4-GCM", "A256GCM": "AES-256-GCM"}
SLOW_BATCHES = 3  # gmssl: ~15 ms per SM2 verification, a few calls are enough


def measure(call: Callable[[], object], *, batch_ms: float, batches: int, max_calls: int = 100_000) -> dict[str, Any]:
    """Median µs per call over ``batches`` timed batches of the same size."""
    warm, started = 0, time.perf_counter()
    while warm < max_calls and (warm == 0 or time.perf_counter() - started < batch_ms / 1000 / 4):
        call()
        warm += 1
    once = max((time.perf_counter() - started) / warm, 1e-7)
    calls = max(1, min(max_calls, round(batch_ms / 1000 / once)))
    per_call = []
    for _ in range(batches):
        started = time.perf_counter()
        for _ in range(calls):
            call()
        per_call.append((time.perf_counter() - started) / calls * 1e6)
    median = statistics.median(per_call)
    return {"us_per_op": median, "ops_per_s": 1e6 / median, "calls_per_batch": calls, "batches": batches,
            "min_us": min(per_call), "max_us": max(per_call)}


def gmssl_sm2(key: p.sm_ec.EllipticCurvePrivateKey) -> sm2.CryptSM2:
    crypt = sm2.CryptSM2(private_key=f"{key.private_numbers().private_value:064x}", public_key="")
    crypt.public_key = p.sm2_public_point(key)[1:].hex()  # set directly: gmssl's lstrip("04") can eat x's digits
    return crypt


def operations() -> list[tuple[str, str, Callable[[], object], bool]]:
    """(operation, library, call, slow) for everything measured; keys and inputs are made here, untimed."""
    sm2_key = p.generate_signing_key("SM2-SM3")
    assert isinstance(sm2_key, p.sm_ec.EllipticCurvePrivateKey)
    rsa2048, rsa4096 = p.generate_signing_key("RSA-SHA256"), p.generate_signing_key("RSA-SHA256", rsa_bits=4096)
    assert isinstance(rsa2048, p.rsa.RSAPrivateKey)
    message = b"appId=wx-miniprogram-01&algorithm=SM2-SM3&timestamp=1764000000&nonce=" + secrets.token_hex(16).encode()
    sm2_sig, rsa2048_sig, rsa4096_sig = p.sign(sm2_key, message), p.sign(rsa2048, message), p.sign(rsa4096, message)
    gm = gmssl_sm2(sm2_key)
    sm2_raw_hex = p.sm2_signature_to_raw(sm2_sig).hex()
    assert gm.verify_with_sm3(sm2_raw_hex, message)
    sealers = {a: p.Sealer(a, p.new_data_key(a)) for a in p.SEAL_ALGORITHMS}
    sealed = {(a, size): sealers[a].seal(data, b"aad") for a in p.SEAL_ALGORITHMS for size, data in SIZES}
    sm4_key = os.urandom(16)
    gm_sm4 = sm4.CryptSM4()
    gm_sm4.set_key(sm4_key, sm4.SM4_ENCRYPT)
    data_key = p.new_data_key("SM4GCM")
    wrapped = p.wrap(rsa2048.public_key(), data_key)
    ops: list[tuple[str, str, Callable[[], object], bool]] = [
        ("SM2-SM3 sign", "tongsuopy", partial(p.sign, sm2_key, message), False),
        ("SM2-SM3 verify", "tongsuopy", partial(p.verify, sm2_key.public_key(), sm2_sig, message), False),
        ("SM2-SM3 verify", "gmssl (pure Python)", partial(gm.verify_with_sm3, sm2_raw_hex, message), True),
        ("RSA-2048 SHA-256 sign", "cryptography", partial(p.sign, rsa2048, message), False),
        ("RSA-2048 SHA-256 verify", "cryptography",
         partial(p.verify, rsa2048.public_key(), rsa2048_sig, message), False),
        ("RSA-4096 SHA-256 sign", "cryptography", partial(p.sign, rsa4096, message), False),
        ("RSA-4096 SHA-256 verify", "cryptography",
         partial(p.verify, rsa4096.public_key(), rsa4096_sig, message), False),
    ]
    for size, data in SIZES:
        ops.append((f"SM3 of {size}", "cryptography", partial(p.digest, "SM3", data), False))
        ops.append((f"SHA-256 of {size}", "hashlib", partial(p.digest, "SHA256", data), False))
    for size, data in SIZES:
        for algorithm in p.SEAL_ALGORITHMS:
            label = SEAL_LABELS[algorithm]
            ops.append((f"{label} seal {size}", "cryptography", partial(sealers[algorithm].seal, data, b"aad"), False))
            ops.append((f"{label} open {size}", "cryptography",
                        partial(sealers[algorithm].open, sealed[(algorithm, size)], b"aad"), False))
    ops += [
        ("SM4-ECB encrypt 1 KB", "cryptography", partial(p.sm4_ecb_encrypt, sm4_key, KB), False),
        ("SM4-ECB encrypt 1 KB", "gmssl (pure Python)", partial(gm_sm4.crypt_ecb, KB), True),
        ("RSA-OAEP-2048 wrap 16-byte key", "cryptography", partial(p.wrap, rsa2048.public_key(), data_key), False),
        ("RSA-OAEP-2048 unwrap 16-byte key", "cryptography", partial(p.unwrap, rsa2048, wrapped), False),
    ]
    return ops


def run(batch_ms: float, batches: int) -> list[dict[str, Any]]:
    rows = []
    for name, library, call, slow in operations():
        figures = measure(call, batch_ms=batch_ms * (4 if slow else 1), batches=SLOW_BATCHES if slow else batches)
        rows.append({"operation": name, "library": library, **figures})
        print(f"{name:<36} {library:<20} {figures['us_per_op']:>12.1f} µs", file=sys.stderr)
    return rows


def render(result: dict[str, Any]) -> str:
    lines = [
        "## Cryptographic operations, per call (bench/crypto.py)",
        "",
        f"- Command: `{result['command']}`",
        f"- Date: {result['date']}; machine: {result['machine']}",
        f"- Libraries: {result['libraries']}",
        f"- Median of {result['batches']} timed batches (gmssl rows: {SLOW_BATCHES}) of about "
        f"{result['batch_ms']:.0f} ms each (gmssl: 4×), one thread, `time.perf_counter`; inputs random, keys "
        "made beforehand. Seal = fresh 12-byte nonce + encrypt + 16-byte tag, with 3 bytes of associated data.",
        "",
        "| operation | library | µs per op | ops/s | calls × batches |",
        "|---|---|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(f"| {row['operation']} | {row['library']} | {_us(row['us_per_op'])} | "
                     f"{row['ops_per_s']:,.0f} | {row['calls_per_batch']} × {row['batches']} |")
    return "\n".join(lines)


def _us(value: float) -> str:
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-ms", type=float, default=40.0)
    parser.add_argument("--batches", type=int, default=7)
    parser.add_argument("--no-record", action="store_true", help="print only; leave RESULTS.md and crypto.json")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = run(args.batch_ms, args.batches)
    result: dict[str, Any] = {
        "command": (".venv/bin/python bench/crypto.py " + " ".join(sys.argv[1:])).strip(),
        "date": datetime.now(UTC).astimezone(SHANGHAI).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPUs ({_cpu_model()}), Python {platform.python_version()}",
        "libraries": ", ".join(f"{name} {version(name)}" for name in ("cryptography", "tongsuopy", "gmssl")),
        "batch_ms": args.batch_ms,
        "batches": args.batches,
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
    }
    print(render(result))
    if not args.no_record:
        (BENCH / "crypto.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        replace_section(BENCH / "RESULTS.md", "crypto", render(result))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
