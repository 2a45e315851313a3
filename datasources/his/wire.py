"""The JSON wire format of our HIS gateway API, derived from the ``HIS`` contract itself.

One endpoint per contract method: ``POST {base}/his/v1/<method>`` with a JSON object of the
method's arguments by name. Answers use the envelope hospital integration platforms commonly use:
``{"code": "0", "data": ...}`` on success, ``{"code": "<REJECTION_CODE>", "message": ...}`` when HIS
refuses (the codes of ``contract.py``, unchanged).

Values travel as JSON: datetimes ISO 8601 with their UTC offset (a naive one is refused), dates
ISO, tuples and lists as arrays, dataclasses as objects with exactly their fields. The codec reads
the contract's type hints, so a new field or method needs no code here; ``decode`` is strict and
says where a value is wrong, because the server turns that message into its 400 answer.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any

from datasources.his.contract import HIS

PREFIX = "/his/v1/"
OK = "0"
BAD_REQUEST = "BAD_REQUEST"
UNKNOWN_METHOD = "UNKNOWN_METHOD"
UNAVAILABLE = "UNAVAILABLE"
INTERNAL = "INTERNAL"

# Calls that change nothing, so a client may safely repeat them after a failure.
IDEMPOTENT = frozenset({
    "campuses", "departments", "departments_by_ids", "doctors", "doctors_by_ids", "schedules",
    "schedules_by_ids", "slots_by_ids", "find_cards", "registrations_by_ids", "registrations_of_patients",
    "queue_snapshots", "queue_entries",
})


class WireError(ValueError):
    """A value does not match the contract's type at ``path``."""


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: Any
    required: bool


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    params: tuple[Param, ...]
    returns: Any
    idempotent: bool


def _describe(name: str) -> Method:
    function = getattr(HIS, name)
    hints = typing.get_type_hints(function)
    params = tuple(
        Param(p.name, hints[p.name], p.default is inspect.Parameter.empty)
        for p in inspect.signature(function).parameters.values()
        if p.name != "self"
    )
    return Method(name, params, hints["return"], name in IDEMPOTENT)


METHODS: dict[str, Method] = {
    name: _describe(name)
    for name, member in vars(HIS).items()
    if inspect.iscoroutinefunction(member) and not name.startswith("_")
}


@cache
def _fields(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    """(name, type, required) of a contract dataclass, its string annotations resolved."""
    hints = typing.get_type_hints(cls)
    return tuple(
        (f.name, hints[f.name], f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
        for f in dataclasses.fields(cls)
    )


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def encode(value: Any, tp: Any) -> Any:
    """A contract value of type ``tp`` as JSON-ready data."""
    if value is None or tp in (str, int, float, bool):
        return value
    if _is_union(tp):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return encode(value, inner)
    if tp is datetime:
        if value.tzinfo is None:
            raise WireError("naive datetime: the HIS API carries instants with their offset")
        return value.isoformat()
    if tp is date:
        return value.isoformat()
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        args = typing.get_args(tp)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return [encode(v, a) for v, a in zip(value, args, strict=True)]
        return [encode(v, args[0]) for v in value]
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return {name: encode(getattr(value, name), ftype) for name, ftype, _ in _fields(tp)}
    raise TypeError(f"the HIS wire format has no encoding for {tp!r}")


def decode(data: Any, tp: Any, path: str = "$") -> Any:
    """JSON data as a contract value of type ``tp``; ``WireError`` says where it does not fit."""
    if _is_union(tp):
        if data is None:
            return None
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return decode(data, inner, path)
    if tp is type(None):
        if data is not None:
            raise WireError(f"{path}: expected null")
        return None
    if tp is bool:
        return _expect(data, bool, "a boolean", path)
    if tp is str:
        return _expect(data, str, "a string", path)
    if tp is int:
        if isinstance(data, bool):
            raise WireError(f"{path}: expected an integer")
        return _expect(data, int, "an integer", path)
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise WireError(f"{path}: expected a number")
        return float(data)
    if tp is datetime:
        return _datetime(_expect(data, str, "an ISO 8601 datetime", path), path)
    if tp is date:
        try:
            return date.fromisoformat(_expect(data, str, "an ISO date", path))
        except ValueError:
            raise WireError(f"{path}: expected an ISO date (YYYY-MM-DD), got {data!r}") from None
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        return _sequence(_expect(data, list, "an array", path), tp, origin, path)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        obj = _expect(data, dict, "an object", path)
        return tp(**decode_object(obj, _fields(tp), path))  # type: ignore[operator]
    raise TypeError(f"the HIS wire format has no decoding for {tp!r}")


def _expect(data: Any, kind: type, what: str, path: str) -> Any:
    if not isinstance(data, kind):
        raise WireError(f"{path}: expected {what}, got {type(data).__name__}")
    return data


def _datetime(text: str, path: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise WireError(f"{path}: expected an ISO 8601 datetime, got {text!r}") from None
    if value.tzinfo is None:
        raise WireError(f"{path}: the datetime {text!r} has no UTC offset")
    return value


def _sequence(items: list[Any], tp: Any, origin: Any, path: str) -> Any:
    args = typing.get_args(tp)
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        if len(items) != len(args):
            raise WireError(f"{path}: expected an array of {len(args)} items, got {len(items)}")
        return tuple(decode(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(items, args, strict=True)))
    values = [decode(v, args[0], f"{path}[{i}]") for i, v in enumerate(items)]
    return tuple(values) if origin is tuple else values


def decode_object(obj: dict[str, Any], fields: Iterable[tuple[str, Any, bool]], path: str) -> dict[str, Any]:
    """Keyword arguments from a JSON object, given (name, type, required) per field.

    An optional field left out is left out of the arguments too, so the callee's default applies.
    """
    fields = tuple(fields)
    known = {name for name, *_ in fields}
    unknown = sorted(set(obj) - known)
    if unknown:
        raise WireError(f"{path}: unknown field(s) {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for name, ftype, required in fields:
        if name in obj:
            out[name] = decode(obj[name], ftype, f"{path}.{name}")
        elif required:
            raise WireError(f"{path}: missing field {name}")
    return out


def encode_arguments(method: Method, arguments: dict[str, Any]) -> dict[str, Any]:
    return {p.name: encode(arguments[p.name], p.type) for p in method.params if p.name in arguments}


def decode_arguments(method: Method, body: Any) -> dict[str, Any]:
    obj = _expect(body, dict, "a JSON object of arguments", "$")
    return decode_object(obj, [(p.name, p.type, p.required) for p in method.params], "$")


def success(method: Method, result: Any) -> dict[str, Any]:
    return {"code": OK, "data": encode(result, method.returns)}


def rejection(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message}
