"""Sagas: flows across systems that cannot share a transaction (insurance, HIS, payment channels).

A saga is a list of steps, each with an action and, where it can be undone, a compensation. The
saga's row records, in the BFF's database, every step as it completes (with its result, which
later steps and compensations read). When a step fails for good, the steps done so far are
compensated newest first; when the process dies between two steps, ``resume`` (run at start-up)
carries on from the first step not recorded. So a step may run twice (it ran, then the process
died before recording it): actions and compensations must be idempotent, e.g. keyed by
``saga.id`` + step name in the identifiers they send (msgid, out_refund_no).

A step that fails with an unknown outcome (a timeout: the other side may have done it) is
compensated too, when it says so (``compensate_on_failure``): the national insurance platform's
2601 reversal exists for exactly that. A compensation that itself fails leaves the saga STUCK for
an operator, with the error; it is retried on the next ``resume``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from datasources.clock import Clock
from datasources.store.db import Database
from datasources.store.models import SagaRecord

log = logging.getLogger(__name__)

RUNNING = "RUNNING"
COMPENSATING = "COMPENSATING"
COMPLETED = "COMPLETED"
COMPENSATED = "COMPENSATED"
STUCK = "STUCK"
UNFINISHED = (RUNNING, COMPENSATING, STUCK)

StepData = dict[str, Any]


@dataclass(frozen=True, slots=True)
class SagaState:
    id: str
    kind: str
    data: StepData  # the input under "input", each done step's result under its name


Action = Callable[[SagaState], Awaitable[Any]]
Compensation = Callable[[SagaState], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    action: Action
    compensate: Compensation | None = None
    # Compensate this step even when its own action failed (its outcome may be unknown).
    compensate_on_failure: bool = False


@dataclass(frozen=True, slots=True)
class SagaDefinition:
    kind: str
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class SagaOutcome:
    id: str
    state: str
    data: StepData
    error: str | None


class Sagas:
    """Runs and resumes the sagas of the kinds registered with it."""

    def __init__(self, db: Database, clock: Clock, definitions: Mapping[str, SagaDefinition]) -> None:
        self.db = db
        self.clock = clock
        self.definitions = dict(definitions)

    async def start(self, kind: str, payload: Mapping[str, Any], *, saga_id: str | None = None) -> SagaOutcome:
        """Records the saga, then runs it to its end (completed or compensated)."""
        definition = self.definitions[kind]
        now = self.clock.now()
        row = SagaRecord(
            id=saga_id or uuid.uuid4().hex,
            kind=definition.kind,
            state=RUNNING,
            data=json.dumps({"input": dict(payload)}, ensure_ascii=False),
            created_at=now,
            updated_at=now,
        )
        async with self.db.writing() as s:
            s.add(row)
        return await self._drive(row.id)

    async def resume(self) -> list[SagaOutcome]:
        """Carries every unfinished saga on (start-up, or an operator's retry of a STUCK one)."""
        async with self.db.reading() as s:
            ids = (
                await s.execute(
                    select(col(SagaRecord.id))
                    .where(col(SagaRecord.state).in_(UNFINISHED))
                    .order_by(col(SagaRecord.created_at))
                )
            ).scalars()
            pending = list(ids)
        return [await self._drive(saga_id) for saga_id in pending]

    async def get(self, saga_id: str) -> SagaOutcome:
        async with self.db.reading() as s:
            row = await s.get(SagaRecord, saga_id)
        if row is None:
            raise KeyError(saga_id)
        return SagaOutcome(row.id, row.state, json.loads(row.data), row.last_error)

    async def _drive(self, saga_id: str) -> SagaOutcome:
        async with self.db.reading() as s:
            row = await s.get(SagaRecord, saga_id)
        assert row is not None
        steps = self.definitions[row.kind].steps
        data: StepData = json.loads(row.data)
        done, compensated, state = row.done_steps, row.compensated_steps, row.state
        state_of = SagaState(row.id, row.kind, data)
        error: str | None = row.last_error
        if state == RUNNING:
            while done < len(steps):
                step = steps[done]
                try:
                    result = await step.action(state_of)
                except Exception as exc:
                    error = f"{step.name}: {type(exc).__name__}: {exc}"
                    log.warning("saga %s (%s) step %s failed; compensating", saga_id, row.kind, step.name)
                    # The failed step counts as done for compensation when its outcome may be unknown.
                    done += 1 if step.compensate_on_failure else 0
                    state = COMPENSATING
                    await self._save(saga_id, state=state, data=data, done=done, compensated=compensated, error=error)
                    break
                data[step.name] = result
                done += 1
                await self._save(saga_id, state=state, data=data, done=done, compensated=compensated, error=None)
            else:
                state = COMPLETED
                await self._save(saga_id, state=state, data=data, done=done, compensated=compensated, error=None)
                return SagaOutcome(saga_id, state, data, None)
        # Compensate newest first: steps done - compensated - 1 down to 0.
        while compensated < done:
            step = steps[done - compensated - 1]
            if step.compensate is not None:
                try:
                    await step.compensate(state_of)
                except Exception as exc:
                    error = f"compensating {step.name}: {type(exc).__name__}: {exc}"
                    log.error("saga %s (%s) is stuck: %s", saga_id, row.kind, error)
                    await self._save(saga_id, state=STUCK, data=data, done=done, compensated=compensated, error=error)
                    return SagaOutcome(saga_id, STUCK, data, error)
            compensated += 1
            await self._save(saga_id, state=COMPENSATING, data=data, done=done, compensated=compensated, error=error)
        await self._save(saga_id, state=COMPENSATED, data=data, done=done, compensated=compensated, error=error)
        return SagaOutcome(saga_id, COMPENSATED, data, error)

    async def _save(
        self, saga_id: str, *, state: str, data: StepData, done: int, compensated: int, error: str | None
    ) -> None:
        async with self.db.writing() as s:
            row = await s.get(SagaRecord, saga_id)
            assert row is not None
            row.state = state
            row.data = json.dumps(data, ensure_ascii=False, default=str)
            row.done_steps = done
            row.compensated_steps = compensated
            row.last_error = error
            row.attempts += 1
            row.updated_at = self.clock.now()
