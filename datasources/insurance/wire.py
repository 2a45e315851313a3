"""The national medical insurance platform's common envelope (国家医保信息平台 接口规范).

Every transaction is one JSON object posted to one endpoint: the request names the transaction in
``infno``, identifies itself with ``msgid`` and carries its arguments in ``input``; the answer
says ``infcode`` 0 (success, ``output`` holds the result) or -1 (failure, ``err_msg`` says why) and
names the platform's own message id in ``inf_refmsgid``.

Field names and formats follow the published specification as widely reproduced by hospital
integrations: ``msgid`` is the 12-character fixmedins code + ``yyyyMMddHHmmss`` + a 4-digit
sequence (30 characters); the answer's ``inf_refmsgid`` is the receiver's division code (6) + time
(14) + a 10-digit serial, and ``refmsg_time``/``respond_time`` are ``yyyyMMddHHmmssSSS``; ``infcode``
is a number, though some gateways send it as a string (both are read); the endpoint is
``POST /fsi/api/rsfComIfsService/callService``; ``inf_time`` is ``yyyy-MM-dd HH:mm:ss`` in Beijing time; amounts are
yuan numbers with two decimals, read here as ``Decimal`` (never float arithmetic) and turned into
integer fen exactly.

The platform's ``err_msg`` is free text. Our sandbox starts it with a stable code and a colon
(``"PERSON_NOT_FOUND: ..."``) so clients keep the contract's codes; text without one is read as
``PLATFORM_REJECTED``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from datasources.clock import SHANGHAI, Clock
from datasources.money import AmountError, fen_from_yuan, yuan_decimal

PATH = "/fsi/api/rsfComIfsService/callService"
SUCCESS = 0
FAILURE = -1
INF_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
MSG_TIME_FORMAT = "%Y%m%d%H%M%S"
FEN_PER_YUAN = Decimal(100)
CENT = Decimal("0.01")
UNCODED = "PLATFORM_REJECTED"
_CODED = re.compile(r"^([A-Z][A-Z_]{2,40}): ?(.*)$", re.DOTALL)


class EnvelopeError(ValueError):
    """A message does not have the envelope's shape."""


# Money ---------------------------------------------------------------------------------------------
def fen_to_yuan(fen: int) -> Decimal:
    """Integer fen as the wire's yuan amount with exactly two decimals."""
    return yuan_decimal(fen)


def yuan_to_fen(yuan: Decimal | int | str) -> int:
    """A yuan amount from the wire as integer fen; refuses anything finer than a fen."""
    try:
        return fen_from_yuan(yuan)
    except AmountError as exc:
        raise EnvelopeError(str(exc)) from None


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        as_float = float(value)
        # Two-decimal amounts below 10^13 yuan survive float's shortest repr unchanged.
        if Decimal(repr(as_float)) != value:
            raise EnvelopeError(f"amount {value} cannot travel as a JSON number exactly")
        return as_float
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, default=_json_default)


def loads(text: str | bytes) -> Any:
    """JSON with every non-integer number as ``Decimal``, so amounts stay exact."""
    return json.loads(text, parse_float=Decimal)


# Message ids ---------------------------------------------------------------------------------------
class MsgIds:
    """``msgid`` = fixmedins code (12) + Beijing time ``yyyyMMddHHmmss`` (14) + sequence (4).

    The sequence counts 0000-9999 and wraps. Uniqueness is of (second, sequence): when the
    sequence would wrap within the second it last used, the time part moves on to the next second
    (ids may run ahead of the clock under a burst of more than 10000 a second, never repeat).

    Across restarts: with ``state_file``, the last second used is written there whenever it
    changes (at most once a second) and read back at start, and a new process begins strictly
    after it. Without one (tests, a single short-lived process) uniqueness holds within the
    process only.
    """

    def __init__(self, fixmedins_code: str, clock: Clock, state_file: Path | None = None) -> None:
        if len(fixmedins_code) != 12:
            raise ValueError("the fixmedins code is 12 characters")
        self.fixmedins_code = fixmedins_code
        self.clock = clock
        self.state_file = state_file
        self._lock = threading.Lock()
        self._second: datetime | None = None
        self._sequence = 0
        if state_file is not None and state_file.exists():
            text = state_file.read_text().strip()
            if text:
                last = datetime.strptime(text, MSG_TIME_FORMAT).replace(tzinfo=SHANGHAI)
                self._second, self._sequence = last, 10_000  # the next id starts a later second

    def next(self) -> str:
        with self._lock:
            now = self.clock.now().astimezone(SHANGHAI).replace(microsecond=0)
            if self._second is None or now > self._second:
                self._second, self._sequence = now, 0
            elif self._sequence >= 9_999:
                self._second, self._sequence = self._second + timedelta(seconds=1), 0
            else:
                self._sequence += 1
                return self._format()
            self._persist()
            return self._format()

    def _format(self) -> str:
        assert self._second is not None
        return f"{self.fixmedins_code}{self._second.strftime(MSG_TIME_FORMAT)}{self._sequence:04d}"

    def _persist(self) -> None:
        if self.state_file is None or self._second is None:
            return
        partial = self.state_file.with_suffix(".tmp")
        partial.write_text(self._second.strftime(MSG_TIME_FORMAT))
        os.replace(partial, self.state_file)


def inf_time(at: datetime) -> str:
    return at.astimezone(SHANGHAI).strftime(INF_TIME_FORMAT)


def parse_inf_time(text: str) -> datetime:
    try:
        return datetime.strptime(text, INF_TIME_FORMAT).replace(tzinfo=SHANGHAI)
    except ValueError:
        raise EnvelopeError(f"not a yyyy-MM-dd HH:mm:ss time: {text!r}") from None


# Envelopes -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Request:
    infno: str
    msgid: str
    mdtrtarea_admvs: str
    insuplc_admdvs: str
    recer_sys_code: str
    infver: str
    opter_type: str
    opter: str
    opter_name: str
    inf_time: str
    fixmedins_code: str
    fixmedins_name: str
    sign_no: str
    input: dict[str, Any]
    dev_no: str = ""
    dev_safe_info: str = ""
    cainfo: str = ""
    signtype: str = ""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Request:
        if not isinstance(data, dict):
            raise EnvelopeError("the request is not a JSON object")
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = data.get(f.name)
            if f.name == "input":
                if not isinstance(value, dict):
                    raise EnvelopeError("input: expected an object")
            elif value is None and f.default is not dataclasses.MISSING:
                continue
            elif not isinstance(value, str):
                raise EnvelopeError(f"{f.name}: expected a string")
            values[f.name] = value
        if len(values["infno"]) != 4 or not values["infno"].isdigit():
            raise EnvelopeError("infno: expected a 4-digit transaction number")
        if len(values["msgid"]) != 30:
            raise EnvelopeError("msgid: expected 30 characters")
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Response:
    infcode: int
    inf_refmsgid: str
    refmsg_time: str
    respond_time: str
    err_msg: str | None = None
    output: dict[str, Any] | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Response:
        if not isinstance(data, dict):
            raise EnvelopeError("the answer is not a JSON object")
        infcode = data.get("infcode")
        if isinstance(infcode, str) and infcode.lstrip("-").isdigit():
            infcode = int(infcode)
        if isinstance(infcode, bool) or not isinstance(infcode, int):
            raise EnvelopeError("infcode: expected an integer")
        output, err_msg = data.get("output"), data.get("err_msg")
        if output is not None and not isinstance(output, dict):
            raise EnvelopeError("output: expected an object")
        if err_msg is not None and not isinstance(err_msg, str):
            raise EnvelopeError("err_msg: expected a string")
        return cls(
            infcode=infcode,
            inf_refmsgid=str(data.get("inf_refmsgid") or ""),
            refmsg_time=str(data.get("refmsg_time") or ""),
            respond_time=str(data.get("respond_time") or ""),
            err_msg=err_msg,
            output=output,
        )

    @property
    def rejection(self) -> tuple[str, str]:
        """(stable code, detail) of a failure answer."""
        text = self.err_msg or ""
        match = _CODED.match(text)
        return (match.group(1), match.group(2)) if match else (UNCODED, text)


def coded(code: str, detail: str) -> str:
    """An ``err_msg`` that carries a stable code."""
    return f"{code}: {detail}"
