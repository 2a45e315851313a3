"""Processes the benchmarks start: each in its own process group on a loopback port, always stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


class Process:
    """A child in its own session (so its whole group can be signalled), output to a log file."""

    def __init__(self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None, log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            list(argv), cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def wait_http(process: Process, url: str, *, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited early:\n{process.tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{process.name} did not answer {url} within {timeout:.0f} s:\n{process.tail()}")


def uvicorn_app(name: str, factory: str, port: int, log_dir: Path) -> Process:
    """A reference app under uvicorn, configured like main.py runs the project (no access log)."""
    argv = [
        PYTHON, "-m", "uvicorn", factory, "--factory", "--host", HOST, "--port", str(port),
        "--no-access-log", "--log-level", "warning",
    ]
    return Process(name, argv, env=dict(os.environ), log_dir=log_dir)


def project_env(data_dir: Path, port: int, *, redis_url: str | None = None) -> dict[str, str]:
    """The environment main.py reads: a fresh data dir and SQLite file, loopback, demo data."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DATABASE_SCHEMA")}
    env.update(
        DATA_DIR=str(data_dir), DATABASE_URL=sqlite_url(data_dir), HOST=HOST, PORT=str(port),
        LOAD_DEMO_DATA="true", BFF_CONFIG=str(data_dir / "no-such-bff.toml"),
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{data_dir / 'bff.db'}"


def project(
    data_dir: Path, port: int, log_dir: Path, *, redis_url: str | None = None, name: str = "project",
    extra_env: dict[str, str] | None = None, workers: int = 1,
) -> Process:
    """The project exactly as ``make run`` starts it: main.py (migrations, demo data, uvicorn with
    ``workers`` processes; one unless asked)."""
    env = {**project_env(data_dir, port, redis_url=redis_url), **(extra_env or {})}
    return Process(name, [PYTHON, "main.py", "--workers", str(workers)], env=env, log_dir=log_dir)


@contextlib.contextmanager
def running(processes: list[Process]) -> Iterator[list[Process]]:
    try:
        yield processes
    finally:
        for p in reversed(processes):
            p.stop()
