"""The HIS gateway's inpatient methods, in the wire format of ``wire.py``, derived from ``HISInpatient``.

``POST {base}/his/v1/inpatient/<method>`` with a JSON object of the method's arguments by name; the
same envelope and strict codec as the rest of the HIS API, amounts in integer fen.
"""

from __future__ import annotations

import inspect
import typing

from datasources.his import wire
from datasources.his.inpatient import HISInpatient

PREFIX = wire.PREFIX + "inpatient/"

# Calls that change nothing, so a client may safely repeat them after a failure. The writes are
# idempotent per reference, but a client that lost the answer repeats them deliberately (the same
# reference), after learning what happened (``admission``, ``settlements_by_references``).
IDEMPOTENT = frozenset(
    {"admission_notice", "free_beds", "admission", "admissions_of", "fee_items", "settlements_by_references"}
)


def _describe(name: str) -> wire.Method:
    function = getattr(HISInpatient, name)
    hints = typing.get_type_hints(function)
    params = tuple(
        wire.Param(p.name, hints[p.name], p.default is inspect.Parameter.empty)
        for p in inspect.signature(function).parameters.values()
        if p.name != "self"
    )
    return wire.Method(name, params, hints["return"], name in IDEMPOTENT)


METHODS: dict[str, wire.Method] = {
    name: _describe(name)
    for name, member in vars(HISInpatient).items()
    if inspect.iscoroutinefunction(member) and not name.startswith("_")
}
