"""Any ``HISBilling`` served in the HIS gateway's wire format, at ``/his/v1/billing/<method>``.

What ``HttpHISBilling`` is tested against. Under one mount the HIS API and its billing methods are
``his_gateway_sandbox_app``: two mounts at one prefix would not do, the first would answer 404 for
the other's paths. Malformed requests get a 400 whose message names the offending argument;
refusals keep their codes; an unavailable HIS is a 503; anything else a masked 500.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette

from datasources.his import billing_wire
from datasources.his.billing import HISBilling
from datasources.his.contract import HIS
from datasources.his.served import his_sandbox_app, serve_methods


def his_billing_sandbox_app(get_billing: Callable[[], HISBilling]) -> Starlette:
    return serve_methods(billing_wire.METHODS, billing_wire.PREFIX, get_billing, "HIS billing")


def his_gateway_sandbox_app(get_his: Callable[[], HIS], get_billing: Callable[[], HISBilling]) -> Starlette:
    """The whole HIS gateway: ``/his/v1/<method>`` and ``/his/v1/billing/<method>`` (their paths do not
    overlap: a method name has no slash)."""
    return Starlette(routes=[*his_billing_sandbox_app(get_billing).routes, *his_sandbox_app(get_his).routes])
