"""No secrets or personal data in the logs: a plugin that watches every log record of the test run.

For the whole session the root logger is at DEBUG with a handler that scans each record's formatted
message (exception and stack text included) for what must never be logged outside the sealed audit
log: session tokens the run issued, PEM private keys, ``enc1:`` ciphertexts, the tests' master key,
resident ID numbers (18 characters with a valid GB 11643 check digit and a plausible birth date) and
mainland mobile numbers, unmasked. Findings fail the run, each with its logger and a masked snippet.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from resolvers.documents import check_digit

PEM_PRIVATE_KEY = re.compile(r"PRIVATE KEY-----")
CIPHERTEXT = re.compile(r"\benc1:[\w.-]+:[A-Z0-9]+:[A-Za-z0-9_=-]{8,}")
RESIDENT_ID = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
MOBILE = re.compile(r"(?<![0-9A-Za-z])1[3-9]\d{9}(?![0-9A-Za-z])")
BEARER = re.compile(r"\bBearer\s+[A-Za-z0-9._~+/-]{16,}=*")
# The tests' own clients log what they send (the token in a WebSocket connection_init frame): that is
# the caller's side of the wire, not a log the BFF keeps.
CLIENT_SIDE = ("websockets.client",)
# Where the BFF issues session tokens: the plugin wraps it to learn every token the run hands out.
TOKEN_ISSUER = ("resolvers.identity", "_open_session")


@dataclass(frozen=True, slots=True)
class Finding:
    logger: str
    kind: str
    snippet: str

    def __str__(self) -> str:
        return f"{self.logger}: {self.kind}: …{self.snippet}…"


def _mask(value: str) -> str:
    keep = 3 if len(value) > 8 else 1
    return value[:keep] + "*" * (len(value) - keep - 2) + value[-2:] if len(value) > 4 else "*" * len(value)


def _is_resident_id(number: str) -> bool:
    number = number.upper()
    if check_digit(number[:17]) != number[17]:
        return False
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return 1880 <= born.year <= 2100


class LogScanner:
    """What counts as a leak. ``secrets`` are exact values (tokens, keys) known to the run."""

    def __init__(self, secrets: Iterable[tuple[str, str]] = ()) -> None:
        self.secrets: dict[str, str] = {}
        for value, kind in secrets:
            self.add_secret(value, kind)

    def add_secret(self, value: str, kind: str) -> None:
        if len(value) >= 12:
            self.secrets[value] = kind

    def scan(self, text: str) -> list[tuple[str, int, int]]:
        """(kind, start, end) of every leak in ``text``."""
        found: list[tuple[str, int, int]] = []
        for kind, pattern in (
            ("PEM private key", PEM_PRIVATE_KEY),
            ("enc1 ciphertext", CIPHERTEXT),
            ("bearer token", BEARER),
            ("mobile number", MOBILE),
        ):
            found.extend((kind, m.start(), m.end()) for m in pattern.finditer(text))
        found.extend(
            ("resident ID number", m.start(), m.end()) for m in RESIDENT_ID.finditer(text) if _is_resident_id(m[0])
        )
        for value, kind in self.secrets.items():
            start = text.find(value)
            if start >= 0:
                found.append((kind, start, start + len(value)))
        distinct: dict[tuple[str, str], tuple[str, int, int]] = {}  # a value repeated in one record: once
        for kind, start, end in found:
            distinct.setdefault((kind, text[start:end]), (kind, start, end))
        return list(distinct.values())

    def findings(self, logger: str, text: str) -> list[Finding]:
        spans = self.scan(text)
        result = []
        for kind, start, end in spans:
            window_start, window_end = max(0, start - 24), min(len(text), end + 24)
            snippet = text[window_start:window_end]
            for _, s, e in sorted(spans, key=lambda span: -span[1]):  # every leak in the window masked
                a, b = max(s, window_start) - window_start, min(e, window_end) - window_start
                if a < b:
                    whole = s >= window_start and e <= window_end
                    snippet = snippet[:a] + (_mask(snippet[a:b]) if whole else "*" * (b - a)) + snippet[b:]
            result.append(Finding(logger, kind, snippet.replace("\n", " ")))
        return result


class ScanningHandler(logging.Handler):
    """Formats every record it is handed and keeps only the findings (not the records)."""

    def __init__(self, scanner: LogScanner) -> None:
        super().__init__(logging.DEBUG)
        self.scanner = scanner
        self.found: list[Finding] = []
        self.records = 0
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(CLIENT_SIDE):
            return
        self.records += 1
        try:
            text = self.format(record)
        except Exception:  # a record that cannot be formatted leaks nothing; say so instead of crashing
            text = f"<unformattable record from {record.pathname}:{record.lineno}>"
        self.found.extend(self.scanner.findings(record.name, text))


class LogHygiene:
    """The pytest plugin: attached for the session, reports at its end."""

    def __init__(self, secrets: Iterable[tuple[str, str]]) -> None:
        self.scanner = LogScanner(secrets)
        self.handler = ScanningHandler(self.scanner)
        self._root_level = logging.NOTSET
        self._unwrap: Callable[[], None] | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        root = logging.getLogger()
        self._root_level = root.level
        root.setLevel(logging.DEBUG)
        root.addHandler(self.handler)
        self._unwrap = self._collect_tokens()

    def _collect_tokens(self) -> Callable[[], None]:
        module_name, name = TOKEN_ISSUER
        module = __import__(module_name, fromlist=[name])
        issue = getattr(module, name, None)
        if issue is None:
            raise pytest.UsageError(
                f"tests/log_hygiene.py: {module_name}.{name} (where session tokens are issued) is gone; "
                "point TOKEN_ISSUER at the function that issues them now"
            )

        def issuing(*args: Any, **kwargs: Any) -> Any:
            result = issue(*args, **kwargs)
            self.scanner.add_secret(result[0], "session token")
            return result

        setattr(module, name, issuing)
        return lambda: setattr(module, name, issue)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self._root_level)
        if self._unwrap is not None:
            self._unwrap()
        if self.handler.found:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        found = self.handler.found
        if not found:
            return
        terminalreporter.section("log hygiene: secrets or personal data in the logs", red=True)
        grouped: dict[tuple[str, str], list[Finding]] = {}
        for finding in found:
            grouped.setdefault((finding.logger, finding.kind), []).append(finding)
        for (logger, kind), findings in grouped.items():
            terminalreporter.write_line(f"{logger}: {len(findings)} × {kind}, e.g.", red=True)
            for finding in findings[:3]:
                terminalreporter.write_line(f"    …{finding.snippet}…")
        terminalreporter.write_line(f"{len(found)} findings in {self.handler.records} log records: the run fails")
