"""Medical cards: finding the cards HIS holds for a patient, binding one, or creating the record (建档)."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from datasources.errors import SourceRejected, SourceUnavailable
from datasources.his import contract as his_contract
from datasources.store.fieldcrypt import FieldCipher
from datasources.store.models import MedicalCardBinding, Patient
from resolvers import cache_keys
from resolvers.deps import Deps
from resolvers.errors import HIS_DOWN, NotAllowed, NotFound, ServiceUnavailable
from resolvers.patients import CardView, card_view, owned_patient, require_complete


async def find_hospital_cards(deps: Deps, *, account_id: int, patient_id: int) -> list[his_contract.MedicalCard]:
    """Cards HIS holds under this patient's name and document number (both must match)."""
    patient = await owned_patient(deps.db, deps.cipher, account_id=account_id, patient_id=patient_id)
    try:
        return await deps.sources.his.find_cards(name=patient.name, document_number=patient.document_number)
    except SourceUnavailable as exc:
        raise ServiceUnavailable(HIS_DOWN) from exc


def card_ref(cipher: FieldCipher, card_no: str) -> str:
    """An opaque handle for a card found in HIS: the client picks from a list without seeing numbers."""
    return cipher.blind_index(card_no, context="card.ref")[:32]


async def bind_card(deps: Deps, *, account_id: int, patient_id: int, ref: str) -> CardView:
    """Binds a card that HIS holds under the patient's own name and document number."""
    patient = await owned_patient(deps.db, deps.cipher, account_id=account_id, patient_id=patient_id)
    require_complete(patient)
    cards = await find_hospital_cards(deps, account_id=account_id, patient_id=patient_id)
    card = next((c for c in cards if card_ref(deps.cipher, c.card_no) == ref.strip()), None)
    if card is None:
        raise NotFound("The hospital has no card with this number under this patient's name and ID.")
    return await _bind(deps, account_id=account_id, patient_id=patient_id, card=card)


async def create_hospital_record(deps: Deps, *, account_id: int, patient_id: int) -> CardView:
    """建档: creates the patient's record in HIS and binds the new card."""
    patient = await owned_patient(deps.db, deps.cipher, account_id=account_id, patient_id=patient_id)
    require_complete(patient)
    try:
        card = await deps.sources.his.create_record(
            his_contract.PatientRecordInput(
                name=patient.name,
                document_type=patient.document_type,
                document_number=patient.document_number,
                gender=patient.gender,
                birth_date=patient.birth_date,
                phone=patient.phone,
                nationality=patient.nationality,
                address=" ".join(filter(None, (patient.address, patient.address_detail))),
            )
        )
    except SourceRejected as exc:
        if exc.code == his_contract.RECORD_EXISTS:
            raise NotAllowed(
                "The hospital already has a record for this person: bind one of the existing cards instead.",
                "RECORD_EXISTS",
            ) from exc
        raise
    except SourceUnavailable as exc:
        raise ServiceUnavailable(HIS_DOWN) from exc
    return await _bind(deps, account_id=account_id, patient_id=patient_id, card=card)


async def _bind(deps: Deps, *, account_id: int, patient_id: int, card: his_contract.MedicalCard) -> CardView:
    cipher = deps.cipher
    try:
        async with deps.db.writing() as s:
            row = MedicalCardBinding(
                patient_id=patient_id,
                card_no_enc=cipher.encrypt(card.card_no, context="card.card_no"),
                card_no_index=cipher.blind_index(card.card_no, context="card.card_no"),
                card_type=card.card_type,
                his_patient_id=card.his_patient_id,
                bound_at=deps.clock.now(),
            )
            s.add(row)
            patient = await s.get(Patient, patient_id)
            assert patient is not None
            if patient.his_patient_id is None:
                patient.his_patient_id = card.his_patient_id
            await s.flush()
            bound = card_view(row, cipher)
    except IntegrityError as exc:
        raise NotAllowed("This card is already bound to this patient.", "ALREADY_BOUND") from exc
    await deps.invalidate(cache_keys.cards(patient_id), cache_keys.patients(account_id))
    return bound
