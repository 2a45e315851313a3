"""The log hygiene plugin (tests/log_hygiene.py) watches this very run, and finds what it must."""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path

import pytest

from datasources.store.db import Database
from tests.factories import resident_id
from tests.log_hygiene import LogScanner, ScanningHandler

PEM = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqBHM9VAYItBG0wawIBAQQg\n-----END PRIVATE KEY-----"
CIPHERTEXT = "enc1:field-2:SM4GCM:q83vEjRWeJC7ze8SNFZ4kLvN7xI0VniQ"


def record(message: str, *args: object, name: str = "resolvers.patients") -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, message, args, None)


def kinds(handler: ScanningHandler) -> list[str]:
    return [finding.kind for finding in handler.found]


def test_a_resident_id_number_in_a_log_record_is_found_and_reported_masked() -> None:
    number = resident_id("19900307")
    handler = ScanningHandler(LogScanner())
    handler.handle(record("patient %s added", number))
    [finding] = handler.found
    assert (finding.logger, finding.kind) == ("resolvers.patients", "resident ID number")
    assert number not in finding.snippet and number[:3] in finding.snippet


def test_each_kind_of_leak_is_found_in_messages_and_in_exception_text() -> None:
    token = "kq0Z3t6jY8m2_XwVbQ1rP4sD7fG9hJ0lN2cE5aT8uIo"
    master = "a2tr" * 10
    handler = ScanningHandler(LogScanner([(token, "session token"), (master, "master key")]))
    handler.handle(record("calling %s", "13912345678"))
    handler.handle(record("stored %s", CIPHERTEXT))
    handler.handle(record("loaded key %s", PEM))
    handler.handle(record("header Authorization: Bearer %s", "x" * 43))
    handler.handle(record("session %s opened", token))
    handler.handle(record("key %s", master))
    try:
        raise ValueError(f"duplicate document {resident_id()}")
    except ValueError:
        failed = logging.LogRecord("bff.errors", logging.ERROR, __file__, 1, "request failed", (), sys.exc_info())
    handler.handle(failed)
    assert kinds(handler) == [
        "mobile number", "enc1 ciphertext", "PEM private key", "bearer token", "session token", "master key",
        "resident ID number",
    ]


def test_masked_values_and_look_alikes_are_not_findings() -> None:
    number = resident_id()
    wrong_check = number[:17] + ("0" if number[17] != "0" else "1")
    handler = ScanningHandler(LogScanner())
    handler.handle(record("patient 李* 130******89 138****8000 registered"))
    handler.handle(record("id %s and order 2026112309100000001", wrong_check))
    handler.handle(record("took 13912345678901 ns; hash 4f1c%s", "9" * 60))
    handler.handle(record("frame sent", name="websockets.client"))  # the tests' client side
    assert handler.found == []


def test_a_snippet_masks_every_leak_it_shows() -> None:
    number, phone = resident_id(), "13912345678"
    handler = ScanningHandler(LogScanner())
    handler.handle(record("added %s, phone %s", number, phone))
    assert len(handler.found) == 2
    for finding in handler.found:
        assert number not in finding.snippet and phone not in finding.snippet
        assert number[6:14] not in finding.snippet  # not even the part a window cut


def test_the_plugin_watches_this_run_at_debug(request: pytest.FixtureRequest) -> None:
    plugin = request.config.pluginmanager.get_plugin("log-hygiene")
    assert plugin is not None, "tests/conftest.py registers the log hygiene plugin"
    root = logging.getLogger()
    assert plugin.handler in root.handlers and root.level == logging.DEBUG
    seen = plugin.handler.records
    logging.getLogger("bff.anything").debug("a harmless line")
    assert plugin.handler.records == seen + 1


async def test_the_sqlite_driver_logs_no_statement_and_no_parameter(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")  # the driver's logger is set up with the engine
    await db.dispose()
    driver = logging.getLogger("aiosqlite")
    assert driver.getEffectiveLevel() >= logging.INFO
    insert = functools.partial(print, "INSERT INTO patient VALUES (?)", (resident_id(),))
    leaky = logging.LogRecord("aiosqlite", logging.DEBUG, __file__, 1, "executing %s", (insert,), None)
    assert driver.filter(leaky)
    assert leaky.getMessage() == "executing print"
