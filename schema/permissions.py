"""Who may call what: declared on fields, checked in one place.

``has_permission`` is synchronous and strawberry raises right after it, so setting the message on
the instance cannot leak between concurrent requests.
"""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission
from strawberry.types import Info

from resolvers.identity import DEVICE, DOCTOR, OPERATOR, PATIENT, PHARMACIST


class IsAuthenticated(BasePermission):
    roles: tuple[str, ...] = ()
    message = "Log in first."

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        viewer = info.context.viewer
        if not viewer.is_authenticated:
            self.message = info.context.auth_error or "Log in first."
            self.error_extensions = {"code": "UNAUTHENTICATED"}
            return False
        if self.roles and viewer.role not in self.roles:
            self.message = "Your role cannot do this."
            self.error_extensions = {"code": "FORBIDDEN"}
            return False
        return True


class IsPatient(IsAuthenticated):
    roles = (PATIENT,)


class IsDoctor(IsAuthenticated):
    roles = (DOCTOR,)


class IsDevice(IsAuthenticated):
    """A kiosk or bedside terminal: a signed request from an app registered as a DEVICE."""

    roles = (DEVICE,)


class IsStaff(IsAuthenticated):
    roles = (DOCTOR, PHARMACIST, OPERATOR)


class OperatorPermission(IsAuthenticated):
    """Operators whose roles grant ``permission`` (tables now, the console later); nobody else."""

    roles = (OPERATOR,)
    permission = ""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        if not super().has_permission(source, info, **kwargs):
            return False
        if self.permission not in info.context.viewer.permissions:
            self.message = f"Your roles do not grant {self.permission}."
            self.error_extensions = {"code": "FORBIDDEN"}
            return False
        return True


class CanManageSecurity(OperatorPermission):
    """Apps, certificates and keys."""

    permission = "security.manage"


class CanReadPatients(OperatorPermission):
    """Patients' records, masked (unmasking needs ``personal_data.unmask`` and a purpose)."""

    permission = "patients.read"


class CanReconcile(OperatorPermission):
    """The daily reconciliation of payments: runs, their discrepancies, the refunds they propose."""

    permission = "payments.reconcile"


class CanApproveRefunds(OperatorPermission):
    """Deciding on refunds that wait for an operator: approve (the money goes back) or reject."""

    permission = "refunds.approve"
