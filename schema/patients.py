"""就诊人 and their medical cards. Personal data is masked in every field."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated

import strawberry

from datasources.his import contract as his_contract
from datasources.store.fieldcrypt import FieldCipher
from resolvers import medical_cards, patients, reveal
from resolvers.errors import DomainError, NotFound
from resolvers.privacy import (
    mask_address,
    mask_address_detail,
    mask_card_number,
    mask_document_number,
    mask_name,
    mask_phone,
)
from schema.common import (
    Ctx,
    InvalidInputError,
    MissingPatientInformationError,
    NotAllowedError,
    NotFoundError,
    ServiceUnavailableError,
)
from schema.enums import DocumentType, Gender, Relationship, RevealPurpose, plain
from schema.errors import user_error
from schema.permissions import CanReadPatients, IsPatient


def parse_id(value: str) -> int:
    """GraphQL IDs of the BFF's own rows are integers; anything else names nothing."""
    if not value.isdigit() or len(value) > 18:
        raise NotFound("No such object.")
    return int(value)


@strawberry.type
class MedicalCard:
    id: strawberry.ID
    card_no: str = strawberry.field(description="Masked: only the last four digits show.")
    card_type: str
    bound_at: dt.datetime

    @staticmethod
    def of(x: patients.CardView) -> MedicalCard:
        return MedicalCard(
            id=strawberry.ID(str(x.id)), card_no=mask_card_number(x.card_no), card_type=x.card_type, bound_at=x.bound_at
        )


@strawberry.type(description="A card the hospital holds for the patient; bind it with `ref`.")
class HospitalCard:
    ref: str
    card_no: str = strawberry.field(description="Masked: only the last four digits show.")
    card_type: str
    created_at: dt.datetime


@strawberry.type
class Patient:
    id: strawberry.ID
    name: str = strawberry.field(description="Masked, e.g. 李*.")
    relationship: Relationship
    document_type: DocumentType
    document_number: str = strawberry.field(description="Masked, e.g. 130******89.")
    phone: str | None = strawberry.field(description="Masked, e.g. 138****5678.")
    gender: Gender | None
    birth_date: dt.date | None
    nationality: str | None
    ethnicity: str | None
    occupation: str | None
    address: str | None = strawberry.field(description="Masked below the district, e.g. 广州市越秀区****.")
    address_detail: str | None = strawberry.field(description="Masked: ****.")
    missing_fields: list[str] = strawberry.field(
        description="Fields to complete before binding a card or booking; empty when the record is complete."
    )
    has_hospital_record: bool
    cards: list[MedicalCard]

    @staticmethod
    def of(x: patients.PatientView, cards: list[patients.CardView]) -> Patient:
        return Patient(
            id=strawberry.ID(str(x.id)),
            name=mask_name(x.name),
            relationship=Relationship(x.relationship),
            document_type=DocumentType(x.document_type),
            document_number=mask_document_number(x.document_number),
            phone=mask_phone(x.phone) if x.phone else None,
            gender=Gender(x.gender) if x.gender else None,
            birth_date=x.birth_date,
            nationality=x.nationality,
            ethnicity=x.ethnicity,
            occupation=x.occupation,
            address=mask_address(x.address) if x.address else None,
            address_detail=mask_address_detail(x.address_detail) if x.address_detail else None,
            missing_fields=list(x.missing_fields),
            has_hospital_record=x.his_patient_id is not None,
            cards=[MedicalCard.of(k) for k in cards],
        )

    @strawberry.field
    def is_complete(self) -> bool:
        return not self.missing_fields

    @strawberry.field(
        description="The values unmasked, for a purpose your role is allowed; each call is recorded in the audit log."
    )
    async def unmasked(self, info: Ctx, purpose: RevealPurpose) -> UnmaskedPatient:
        view, cards = await reveal.reveal_patient(
            info.context.deps,
            info.context.viewer,
            patient_id=int(self.id),
            purpose=purpose.value,
            request_id=info.context.request_id,
        )
        return UnmaskedPatient(
            name=view.name,
            document_number=view.document_number,
            phone=view.phone,
            address=view.address,
            address_detail=view.address_detail,
            card_numbers=[c.card_no for c in cards],
        )


@strawberry.type(description="Personal data in full. Keep it on screen only as long as needed.")
class UnmaskedPatient:
    name: str
    document_number: str
    phone: str | None
    address: str | None
    address_detail: str | None
    card_numbers: list[str]


async def patients_of(info: Ctx, views: Sequence[patients.PatientView]) -> list[Patient]:
    """Patients with their cards, loaded together: the fields below resolve without awaiting."""
    cards = await info.context.loaders.cards_by_patient.load_many([v.id for v in views])
    return [Patient.of(v, k) for v, k in zip(views, cards, strict=True)]


@strawberry.input
class AddPatientInput:
    name: str
    relationship: Relationship
    document_type: DocumentType
    document_number: str
    phone: str | None = None
    gender: Gender | None = strawberry.field(default=None, description="Derived from a resident ID when omitted.")
    birth_date: dt.date | None = strawberry.field(default=None, description="Derived from a resident ID when omitted.")
    nationality: str | None = strawberry.field(default=None, description="ISO 3166 alpha-3; CHN for resident IDs.")
    ethnicity: str | None = None
    occupation: str | None = None
    address: str | None = None
    address_detail: str | None = None


@strawberry.input(description="Only the fields given change.")
class UpdatePatientInput:
    patient_id: strawberry.ID
    name: str | None = strawberry.UNSET
    relationship: Relationship | None = strawberry.UNSET
    document_type: DocumentType | None = strawberry.UNSET
    document_number: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    gender: Gender | None = strawberry.UNSET
    birth_date: dt.date | None = strawberry.UNSET
    nationality: str | None = strawberry.UNSET
    ethnicity: str | None = strawberry.UNSET
    occupation: str | None = strawberry.UNSET
    address: str | None = strawberry.UNSET
    address_detail: str | None = strawberry.UNSET


@strawberry.input
class PatientRefInput:
    patient_id: strawberry.ID


@strawberry.input
class BindMedicalCardInput:
    patient_id: strawberry.ID
    card_ref: str = strawberry.field(description="The `ref` of one of `hospitalCards(patientId)`.")


@strawberry.type
class PatientSaved:
    patient: Patient


@strawberry.type
class PatientRemoved:
    patient_id: strawberry.ID


@strawberry.type
class MedicalCardBound:
    card: MedicalCard
    patient: Patient


SavePatientPayload = Annotated[
    PatientSaved | InvalidInputError | NotAllowedError | NotFoundError, strawberry.union("SavePatientPayload")
]
RemovePatientPayload = Annotated[
    PatientRemoved | NotFoundError | NotAllowedError | ServiceUnavailableError, strawberry.union("RemovePatientPayload")
]
BindMedicalCardPayload = Annotated[
    MedicalCardBound | MissingPatientInformationError | NotFoundError | NotAllowedError | ServiceUnavailableError,
    strawberry.union("BindMedicalCardPayload"),
]


@strawberry.type
class PatientsMutation:
    @strawberry.mutation(permission_classes=[IsPatient])
    async def add_patient(self, info: Ctx, input: AddPatientInput) -> SavePatientPayload:
        deps, viewer = info.context.deps, info.context.viewer
        data = patients.PatientInput(
            **{k: plain(getattr(input, k)) for k in patients.PatientInput.__dataclass_fields__}
        )
        try:
            view = await patients.add_patient(deps, account_id=viewer.account_id or 0, data=data)
        except DomainError as exc:
            return user_error(exc)
        return PatientSaved(patient=(await patients_of(info, [view]))[0])

    @strawberry.mutation(permission_classes=[IsPatient])
    async def update_patient(self, info: Ctx, input: UpdatePatientInput) -> SavePatientPayload:
        deps, viewer = info.context.deps, info.context.viewer
        changes = {
            k: plain(getattr(input, k))
            for k in patients.PatientInput.__dataclass_fields__
            if getattr(input, k, strawberry.UNSET) is not strawberry.UNSET
        }
        try:
            view = await patients.update_patient(
                deps,
                account_id=viewer.account_id or 0,
                patient_id=parse_id(input.patient_id),
                changes=changes,
            )
        except DomainError as exc:
            return user_error(exc)
        return PatientSaved(patient=(await patients_of(info, [view]))[0])

    @strawberry.mutation(permission_classes=[IsPatient])
    async def remove_patient(self, info: Ctx, input: PatientRefInput) -> RemovePatientPayload:
        deps, viewer = info.context.deps, info.context.viewer
        try:
            removed = await patients.remove_patient(
                deps,
                account_id=viewer.account_id or 0,
                patient_id=parse_id(input.patient_id),
            )
        except DomainError as exc:
            return user_error(exc)
        return PatientRemoved(patient_id=strawberry.ID(str(removed)))

    @strawberry.mutation(permission_classes=[IsPatient], description="Bind a card HIS already holds for the patient.")
    async def bind_medical_card(self, info: Ctx, input: BindMedicalCardInput) -> BindMedicalCardPayload:
        deps, viewer = info.context.deps, info.context.viewer
        try:
            patient_id = parse_id(input.patient_id)
            card = await medical_cards.bind_card(
                deps,
                account_id=viewer.account_id or 0,
                patient_id=patient_id,
                ref=input.card_ref,
            )
            view = await patients.owned_patient(
                deps.db, deps.cipher, account_id=viewer.account_id or 0, patient_id=patient_id
            )
        except DomainError as exc:
            return user_error(exc)
        return MedicalCardBound(card=MedicalCard.of(card), patient=(await patients_of(info, [view]))[0])

    @strawberry.mutation(
        permission_classes=[IsPatient], description="建档: create the hospital record and bind its card."
    )
    async def create_hospital_record(self, info: Ctx, input: PatientRefInput) -> BindMedicalCardPayload:
        deps, viewer = info.context.deps, info.context.viewer
        try:
            patient_id = parse_id(input.patient_id)
            card = await medical_cards.create_hospital_record(
                deps,
                account_id=viewer.account_id or 0,
                patient_id=patient_id,
            )
            view = await patients.owned_patient(
                deps.db, deps.cipher, account_id=viewer.account_id or 0, patient_id=patient_id
            )
        except DomainError as exc:
            return user_error(exc)
        return MedicalCardBound(card=MedicalCard.of(card), patient=(await patients_of(info, [view]))[0])


def hospital_card(cipher: FieldCipher, card: his_contract.MedicalCard) -> HospitalCard:
    return HospitalCard(
        ref=medical_cards.card_ref(cipher, card.card_no),
        card_no=mask_card_number(card.card_no),
        card_type=card.card_type,
        created_at=card.created_at,
    )


@strawberry.type
class PatientsQuery:
    @strawberry.field(
        permission_classes=[CanReadPatients],
        description="A patient's record for the operations console (patients.read), masked like every output.",
    )
    async def patient_record(self, info: Ctx, id: strawberry.ID) -> Patient | None:
        deps = info.context.deps
        try:
            view = await patients.any_patient(deps.db, deps.cipher, patient_id=parse_id(id))
        except NotFound:
            return None
        return (await patients_of(info, [view]))[0] if view else None
