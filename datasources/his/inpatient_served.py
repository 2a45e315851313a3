"""Any ``HISInpatient`` served in the HIS gateway's wire format, at ``/his/v1/inpatient/<method>``.

What ``HttpHISInpatient`` is tested against. Malformed requests get a 400 whose message names the
offending argument; refusals keep their codes; an unavailable HIS is a 503 (which is also how the
sandbox's ``fail_next`` faults reach an HTTP caller); anything else a masked 500.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette

from datasources.his import inpatient_wire
from datasources.his.billing import HISBilling
from datasources.his.billing_served import his_gateway_sandbox_app
from datasources.his.contract import HIS
from datasources.his.inpatient import HISInpatient
from datasources.his.served import serve_methods


def his_inpatient_sandbox_app(get_inpatient: Callable[[], HISInpatient]) -> Starlette:
    return serve_methods(inpatient_wire.METHODS, inpatient_wire.PREFIX, get_inpatient, "HIS inpatient")


def his_hospital_gateway_sandbox_app(
    get_his: Callable[[], HIS], get_billing: Callable[[], HISBilling], get_inpatient: Callable[[], HISInpatient]
) -> Starlette:
    """The whole HIS gateway under one mount: ``/his/v1/<method>``, ``/his/v1/billing/<method>`` and
    ``/his/v1/inpatient/<method>`` (a method name has no slash, so the paths do not overlap)."""
    return Starlette(
        routes=[
            *his_inpatient_sandbox_app(get_inpatient).routes,
            *his_gateway_sandbox_app(get_his, get_billing).routes,
        ]
    )
