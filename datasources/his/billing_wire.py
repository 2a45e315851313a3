"""The HIS gateway's billing methods, in the wire format of ``wire.py``, derived from ``HISBilling``.

``POST {base}/his/v1/billing/<method>`` with a JSON object of the method's arguments by name; the
same envelope (``{"code": "0", "data": ...}``, or a refusal's code and message) and the same strict
codec as the rest of the HIS API. Amounts stay integer fen, as everywhere on this API: the HIS is
the ledger, and a yuan text would only be parsed back.
"""

from __future__ import annotations

import inspect
import typing

from datasources.his import wire
from datasources.his.billing import HISBilling

PREFIX = wire.PREFIX + "billing/"

# Calls that change nothing, so a client may safely repeat them after a failure. The writes are
# idempotent per reference too, but a client that lost the answer repeats them deliberately (the
# same reference), after learning what happened (``receipts_by_references``), never blindly.
IDEMPOTENT = frozenset({"pending_bills", "bills_by_ids", "receipts_by_references", "ledger", "deposit_accounts"})


def _describe(name: str) -> wire.Method:
    function = getattr(HISBilling, name)
    hints = typing.get_type_hints(function)
    params = tuple(
        wire.Param(p.name, hints[p.name], p.default is inspect.Parameter.empty)
        for p in inspect.signature(function).parameters.values()
        if p.name != "self"
    )
    return wire.Method(name, params, hints["return"], name in IDEMPOTENT)


METHODS: dict[str, wire.Method] = {
    name: _describe(name)
    for name, member in vars(HISBilling).items()
    if inspect.iscoroutinefunction(member) and not name.startswith("_")
}
