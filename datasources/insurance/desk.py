"""What the sandbox's transaction desks share: refusing a message, reading its input, finding the
visit it is about, and what applying it did (for the message record and a later reversal)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import InvalidOperation
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from datasources.insurance import contract as c
from datasources.insurance import wire
from datasources.insurance.tables import InsurVisit

T = TypeVar("T")
M = TypeVar("M")
ACTIVE, CANCELLED, REVERSED, DISCHARGED = "ACTIVE", "CANCELLED", "REVERSED", "DISCHARGED"
OUTPATIENT, INPATIENT = "OTP", "IPT"  # InsurVisit.kind


class Refusal(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Applied:
    """A message's output, the visit it touched and what it did (JSON-able), kept with the message."""

    output: dict[str, Any]
    mdtrt_id: str | None = None
    effect: dict[str, Any] | None = None

    @property
    def effect_json(self) -> str | None:
        return None if self.effect is None else json.dumps(self.effect, sort_keys=True)


def effect_of(text: str | None) -> dict[str, Any]:
    return json.loads(text) if text else {}


def field(data: Any, name: str) -> str:
    value = data.get(name) if isinstance(data, dict) else None
    if not isinstance(value, str) or not value:
        raise Refusal(c.BAD_REQUEST, f"input is missing {name}")
    return value


def section(request: wire.Request, key: str = "data") -> dict[str, Any]:
    data = request.input.get(key)
    if not isinstance(data, dict):
        raise Refusal(c.BAD_REQUEST, f"input.{key}: expected an object")
    return data


def decode(read: Callable[..., T], *args: Any) -> T:
    """A codec reader applied to the input; a malformed input is refused as BAD_REQUEST."""
    try:
        return read(*args)
    except KeyError as exc:
        raise Refusal(c.BAD_REQUEST, f"input is missing {exc}") from None
    except (TypeError, ValueError, InvalidOperation) as exc:
        raise Refusal(c.BAD_REQUEST, str(exc) or type(exc).__name__) from None


async def locked(s: AsyncSession, model: type[M], key: object) -> M | None:
    """The row, read afresh and locked for this transaction (PostgreSQL; SQLite writes one at a time)."""
    return await s.get(model, key, with_for_update=True, populate_existing=True)


async def find_visit(
    s: AsyncSession, request: wire.Request, psn_no: str, mdtrt_id: str, kind: str, *, cancelled_ok: bool = False
) -> InsurVisit:
    """The visit (locked for this transaction) of this person at this institution, of this kind."""
    visit = await locked(s, InsurVisit, mdtrt_id)
    if (
        visit is None or visit.status == REVERSED or visit.psn_no != psn_no
        or visit.fixmedins_code != request.fixmedins_code
    ):
        raise Refusal(c.VISIT_NOT_FOUND, "no such visit at this institution")
    if visit.kind != kind:
        what = "an inpatient stay" if visit.kind == INPATIENT else "an outpatient visit"
        raise Refusal(c.WRONG_VISIT_KIND, f"the visit is {what}")
    if visit.status == CANCELLED and not cancelled_ok:
        raise Refusal(c.ALREADY_CANCELLED, "the visit is cancelled")
    return visit
