"""Personal data unmasked: only for the roles and purposes allowed, and every such read audited.

Every output masks names, ID numbers, phones, card numbers and addresses by default
(``resolvers.privacy``). A patient may see their own records in full to correct them; an
operator whose roles grant ``personal_data.unmask`` may see a patient's for a stated purpose
(answering the patient, a payment dispute, a legal request). The audit record (who, whose, which
fields, why) lands before the data is returned: if it cannot be written, nothing is shown.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import col

from datasources.store.models import MedicalCardBinding, Patient
from resolvers import patients
from resolvers.deps import Deps
from resolvers.errors import NotAuthorized, NotFound
from resolvers.identity import OPERATOR, PATIENT, Viewer
from resolvers.patients import CardView, PatientView
from resolvers.privacy import REVEAL_PERMISSION, REVEAL_PURPOSES

REVEALED_FIELDS = ("name", "documentNumber", "phone", "address", "addressDetail", "cards.cardNo")


def check_purpose(viewer: Viewer, purpose: str) -> None:
    allowed = REVEAL_PURPOSES.get(viewer.role or "", frozenset())
    if purpose not in allowed:
        purposes = ", ".join(sorted(allowed)) or "no purpose"
        raise NotAuthorized(f"Your role may see personal data unmasked only for: {purposes}.")
    if viewer.role == OPERATOR and REVEAL_PERMISSION not in viewer.permissions:
        raise NotAuthorized(f"Seeing personal data unmasked needs the {REVEAL_PERMISSION} permission.")


async def reveal_patient(
    deps: Deps, viewer: Viewer, *, patient_id: int, purpose: str, request_id: str
) -> tuple[PatientView, list[CardView]]:
    check_purpose(viewer, purpose)
    async with deps.db.writing() as s:
        row = await s.get(Patient, patient_id)
        if row is None or row.removed_at is not None:
            raise NotFound("No such patient.")
        if viewer.role == PATIENT and row.account_id != viewer.account_id:
            raise NotFound("No such patient on this account.")
        bindings = (
            (await s.execute(select(MedicalCardBinding).where(col(MedicalCardBinding.patient_id) == patient_id)))
            .scalars()
            .all()
        )
        view = patients.view_of(row, deps.cipher)
        cards = [patients.card_view(b, deps.cipher) for b in bindings]
        # Last in the transaction (it locks the chain's head until commit); nothing is returned
        # unless it commits.
        await deps.audit.record(
            s,
            at=deps.clock.now(),
            actor_account_id=viewer.account_id,
            actor_role=viewer.role or "",
            action="personal_data.unmasked",
            target_type="patient",
            target_id=str(patient_id),
            detail={"purpose": purpose, "fields": list(REVEALED_FIELDS)},
            request_id=request_id,
        )
    return view, cards
