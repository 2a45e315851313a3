"""Sagas: each step recorded as it completes; a failure compensates what was done, newest first;
a process killed between steps resumes where it stopped."""

from __future__ import annotations

import pytest

from datasources.clock import FixedClock
from datasources.store.db import Database
from resolvers.sagas import COMPENSATED, COMPLETED, STUCK, SagaDefinition, Sagas, SagaState, Step

STEPS = ("insurance_settle", "his_write_back", "notify")


class ProcessKilled(BaseException):
    """What a SIGKILL between two steps looks like to the code after it: nothing runs."""


class Ledger:
    """The outside world the steps change, keyed so a repeated step changes nothing twice."""

    def __init__(self) -> None:
        self.effects: dict[str, str] = {}
        self.log: list[str] = []
        self.fail_at: str | None = None
        self.kill_after: str | None = None
        self.fail_compensation: str | None = None

    def step(self, name: str) -> Step:
        async def action(saga: SagaState) -> dict[str, str]:
            if self.fail_at == name:
                raise RuntimeError(f"{name} refused")
            self.effects.setdefault(f"{saga.id}:{name}", "done")
            self.log.append(name)
            if self.kill_after == name:
                self.kill_after = None
                raise ProcessKilled
            return {"ref": f"{name}-{saga.data['input']['amountFen']}"}

        async def compensate(saga: SagaState) -> None:
            if self.fail_compensation == name:
                self.fail_compensation = None
                raise RuntimeError(f"undoing {name} timed out")
            self.effects.pop(f"{saga.id}:{name}", None)
            self.log.append(f"undo {name}")

        return Step(name, action, compensate)

    def definition(self) -> SagaDefinition:
        return SagaDefinition("discharge_settlement", tuple(self.step(n) for n in STEPS))


def sagas(db: Database, clock: FixedClock, ledger: Ledger) -> Sagas:
    return Sagas(db, clock, {"discharge_settlement": ledger.definition()})


async def test_all_steps_complete_and_each_result_is_kept(db: Database, clock: FixedClock) -> None:
    ledger = Ledger()
    outcome = await sagas(db, clock, ledger).start("discharge_settlement", {"amountFen": 12345})
    assert outcome.state == COMPLETED and ledger.log == list(STEPS)
    assert outcome.data["his_write_back"] == {"ref": "his_write_back-12345"}
    assert (await sagas(db, clock, ledger).get(outcome.id)).state == COMPLETED


@pytest.mark.parametrize("failing", STEPS)
async def test_a_failing_step_compensates_what_was_done_newest_first(
    db: Database, clock: FixedClock, failing: str
) -> None:
    ledger = Ledger()
    ledger.fail_at = failing
    outcome = await sagas(db, clock, ledger).start("discharge_settlement", {"amountFen": 100})
    done = list(STEPS[: STEPS.index(failing)])
    assert outcome.state == COMPENSATED and f"{failing} refused" in (outcome.error or "")
    assert ledger.log == done + [f"undo {n}" for n in reversed(done)]
    assert ledger.effects == {}


@pytest.mark.parametrize("killed_after", STEPS)
async def test_a_process_killed_between_steps_resumes_on_restart(
    db: Database, clock: FixedClock, killed_after: str
) -> None:
    ledger = Ledger()
    ledger.kill_after = killed_after
    with pytest.raises(ProcessKilled):
        await sagas(db, clock, ledger).start("discharge_settlement", {"amountFen": 100}, saga_id="s1")
    [resumed] = await sagas(db, clock, ledger).resume()  # a new process
    assert resumed.state == COMPLETED
    # The killed step had acted but was not recorded: it runs again, and being keyed changes nothing twice.
    assert ledger.log == [*STEPS[: STEPS.index(killed_after) + 1], *STEPS[STEPS.index(killed_after) :]]
    assert sorted(ledger.effects) == sorted(f"s1:{n}" for n in STEPS)
    assert await sagas(db, clock, ledger).resume() == []  # nothing left


async def test_a_process_killed_while_compensating_finishes_compensating(db: Database, clock: FixedClock) -> None:
    ledger = Ledger()
    ledger.fail_at = "notify"
    ledger.fail_compensation = "his_write_back"
    stuck = await sagas(db, clock, ledger).start("discharge_settlement", {"amountFen": 100}, saga_id="s2")
    assert stuck.state == STUCK and "undoing his_write_back timed out" in (stuck.error or "")
    assert ledger.effects == {"s2:insurance_settle": "done", "s2:his_write_back": "done"}
    [resumed] = await sagas(db, clock, ledger).resume()  # the operator's retry, or the next start-up
    assert resumed.state == COMPENSATED and ledger.effects == {}
