"""就诊人: the people an account manages, their completeness, and their HIS medical cards."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasources.clock import local_date
from datasources.errors import SourceUnavailable
from datasources.his import contract as his_contract
from datasources.store.db import Database
from datasources.store.fieldcrypt import FieldCipher
from datasources.store.models import MedicalCardBinding, Patient
from resolvers import cache_keys, documents
from resolvers.deps import Deps
from resolvers.errors import (
    HIS_DOWN,
    InvalidInput,
    MissingPatientInformation,
    NotAllowed,
    NotFound,
    ServiceUnavailable,
)

RELATIONSHIPS = ("SELF", "CHILD", "PARENT", "SPOUSE", "OTHER")
GENDERS = ("MALE", "FEMALE")
MAX_PATIENTS_PER_ACCOUNT = 10


@dataclass(frozen=True, slots=True)
class PatientInput:
    name: str
    relationship: str
    document_type: str
    document_number: str
    phone: str | None = None
    gender: str | None = None
    birth_date: date | None = None
    nationality: str | None = None
    ethnicity: str | None = None
    occupation: str | None = None
    address: str | None = None
    address_detail: str | None = None


@dataclass(frozen=True, slots=True)
class PatientView:
    """A patient as resolvers hand it to the schema: decrypted here, masked by the schema."""

    id: int
    account_id: int
    relationship: str
    name: str
    document_type: str
    document_number: str
    phone: str | None
    gender: str | None
    birth_date: date | None
    nationality: str | None
    ethnicity: str | None
    occupation: str | None
    address: str | None
    address_detail: str | None
    his_patient_id: str | None
    created_at: datetime
    missing_fields: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class CardView:
    id: int
    patient_id: int
    card_no: str
    card_type: str
    his_patient_id: str
    bound_at: datetime


def missing_fields(p: PatientView) -> tuple[str, ...]:
    """Fields the hospital requires before a card is bound or a visit booked (seed 002)."""
    missing = []
    checks = (
        ("documentType", p.document_type),
        ("gender", p.gender),
        ("birthDate", p.birth_date),
        ("phone", p.phone),
        ("nationality", p.nationality),
        ("ethnicity", p.ethnicity if p.nationality == "CHN" else "n/a"),
        ("occupation", p.occupation),
        ("address", p.address),
        ("addressDetail", p.address_detail),
    )
    for name, value in checks:
        if value in (None, ""):
            missing.append(name)
    return tuple(missing)


def view_of(row: Patient, cipher: FieldCipher) -> PatientView:
    view = PatientView(
        id=row.id or 0,
        account_id=row.account_id,
        relationship=row.relationship,
        name=row.name,
        document_type=row.document_type,
        document_number=cipher.decrypt(row.document_number_enc, context="patient.document_number"),
        phone=cipher.decrypt(row.phone_enc, context="patient.phone") if row.phone_enc else None,
        gender=row.gender,
        birth_date=row.birth_date,
        nationality=row.nationality,
        ethnicity=row.ethnicity,
        occupation=row.occupation,
        address=row.address,
        address_detail=row.address_detail,
        his_patient_id=row.his_patient_id,
        created_at=row.created_at,
    )
    return replace(view, missing_fields=missing_fields(view))


def _clean(value: str | None, field_name: str, max_len: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > max_len:
        raise InvalidInput(field_name, f"{field_name} can have at most {max_len} characters.")
    return value or None


def _validated(data: PatientInput, today: date) -> PatientInput:
    name = (data.name or "").strip()
    if not name or len(name) > 64:
        raise InvalidInput("name", "Enter the patient's name as on the identity document (at most 64 characters).")
    if data.relationship not in RELATIONSHIPS:
        raise InvalidInput("relationship", f"Relationship must be one of {', '.join(RELATIONSHIPS)}.")
    if data.gender is not None and data.gender not in GENDERS:
        raise InvalidInput("gender", "Gender must be MALE or FEMALE.")
    birth_date, gender, nationality = data.birth_date, data.gender, data.nationality
    if data.document_type == documents.RESIDENT_ID:
        rid = documents.parse_resident_id(data.document_number, today=today)
        number = rid.number
        if birth_date is not None and birth_date != rid.birth_date:
            raise InvalidInput("birthDate", "The birth date differs from the one in the ID number.")
        if gender is not None and gender != rid.gender:
            raise InvalidInput("gender", "The gender differs from the one the ID number encodes.")
        birth_date, gender, nationality = rid.birth_date, rid.gender, nationality or "CHN"
        if nationality != "CHN":
            raise InvalidInput("nationality", "A resident ID card belongs to a Chinese national (CHN).")
    else:
        number = documents.normalize_document(data.document_type, data.document_number)
        if data.document_type == documents.PASSPORT and nationality in (None, ""):
            raise InvalidInput(
                "nationality", "Foreign nationals registering with a passport must give their nationality."
            )
    if nationality is not None and (len(nationality) != 3 or not nationality.isalpha()):
        raise InvalidInput("nationality", "Nationality is a three-letter country code (ISO 3166), e.g. CHN, USA.")
    if birth_date is not None and birth_date > today:
        raise InvalidInput("birthDate", "The birth date lies in the future.")
    return PatientInput(
        name=name,
        relationship=data.relationship,
        document_type=data.document_type,
        document_number=number,
        phone=documents.normalize_mobile(data.phone) if data.phone else None,
        gender=gender,
        birth_date=birth_date,
        nationality=nationality.upper() if nationality else None,
        ethnicity=_clean(data.ethnicity, "ethnicity", 32),
        occupation=_clean(data.occupation, "occupation", 64),
        address=_clean(data.address, "address", 255),
        address_detail=_clean(data.address_detail, "addressDetail", 255),
    )


def _apply(row: Patient, data: PatientInput, cipher: FieldCipher) -> None:
    row.name = data.name
    row.relationship = data.relationship
    row.document_type = data.document_type
    row.document_number_enc = cipher.encrypt(data.document_number, context="patient.document_number")
    row.document_number_index = cipher.blind_index(data.document_number, context="patient.document_number")
    row.phone_enc = cipher.encrypt(data.phone, context="patient.phone") if data.phone else None
    row.phone_index = cipher.blind_index(data.phone, context="patient.phone") if data.phone else None
    row.gender = data.gender
    row.birth_date = data.birth_date
    row.nationality = data.nationality
    row.ethnicity = data.ethnicity
    row.occupation = data.occupation
    row.address = data.address
    row.address_detail = data.address_detail


async def add_patient(deps: Deps, *, account_id: int, data: PatientInput) -> PatientView:
    db, cipher, now = deps.db, deps.cipher, deps.clock.now()
    data = _validated(data, local_date(now))
    index = cipher.blind_index(data.document_number, context="patient.document_number")
    async with db.writing() as s:
        active = (
            await s.execute(
                select(col(Patient.relationship), col(Patient.document_number_index)).where(
                    col(Patient.account_id) == account_id,
                    col(Patient.removed_at).is_(None),
                )
            )
        ).all()
        if len(active) >= MAX_PATIENTS_PER_ACCOUNT:
            raise NotAllowed(f"An account can manage at most {MAX_PATIENTS_PER_ACCOUNT} patients.", "LIMIT_REACHED")
        if any(idx == index for _, idx in active):
            raise NotAllowed("This person is already among your patients.", "DUPLICATE_PATIENT")
        if data.relationship == "SELF" and any(rel == "SELF" for rel, _ in active):
            raise NotAllowed("Your account already has a patient marked as yourself.", "SELF_EXISTS")
        row = Patient(
            account_id=account_id,
            relationship=data.relationship,
            name=data.name,
            document_type=data.document_type,
            document_number_enc="",
            document_number_index="",
            created_at=now,
            updated_at=now,
        )
        _apply(row, data, cipher)
        s.add(row)
        await s.flush()
        view = view_of(row, cipher)
    await deps.invalidate(cache_keys.patients(account_id))
    return view


async def _owned_row(s: AsyncSession, account_id: int, patient_id: int) -> Patient:
    row = await s.get(Patient, patient_id)
    if row is None or row.account_id != account_id or row.removed_at is not None:
        raise NotFound("No such patient on this account.")
    return row


async def update_patient(deps: Deps, *, account_id: int, patient_id: int, changes: dict[str, Any]) -> PatientView:
    db, cipher, now = deps.db, deps.cipher, deps.clock.now()
    async with db.writing() as s:
        row = await _owned_row(s, account_id, patient_id)
        current = view_of(row, cipher)
        merged = replace(
            PatientInput(**{name: getattr(current, name) for name in PatientInput.__dataclass_fields__}), **changes
        )
        data = _validated(merged, local_date(now))
        if row.his_patient_id and (data.document_number != current.document_number or data.name != current.name):
            raise NotAllowed(
                "Name and document number are fixed once a medical card is bound; add the person again instead.",
                "IDENTITY_LOCKED",
            )
        if data.relationship == "SELF" and current.relationship != "SELF":
            others = await s.execute(
                select(func.count())
                .select_from(Patient)
                .where(
                    col(Patient.account_id) == account_id,
                    col(Patient.relationship) == "SELF",
                    col(Patient.removed_at).is_(None),
                    col(Patient.id) != patient_id,
                )
            )
            if others.scalar_one():
                raise NotAllowed("Your account already has a patient marked as yourself.", "SELF_EXISTS")
        _apply(row, data, cipher)
        row.updated_at = now
        view = view_of(row, cipher)
    await deps.invalidate(cache_keys.patients(account_id))
    return view


ACTIVE_STATUSES = ("BOOKED", "CHECKED_IN", "CALLED")


async def remove_patient(deps: Deps, *, account_id: int, patient_id: int) -> int:
    """Refused while the patient has visits ahead: they would vanish from the account's records."""
    db, cipher, his = deps.db, deps.cipher, deps.sources.his
    patient = await owned_patient(db, cipher, account_id=account_id, patient_id=patient_id)
    cards = (await cards_of_patients(db, cipher, [patient_id]))[0]
    his_ids = {card.his_patient_id for card in cards} | ({patient.his_patient_id} - {None})
    if his_ids:
        try:
            active = await his.registrations_of_patients(
                sorted(i for i in his_ids if i),
                his_contract.RegistrationFilter(statuses=ACTIVE_STATUSES),
                after=None,
                first=1,
            )
        except SourceUnavailable as exc:
            raise ServiceUnavailable(HIS_DOWN) from exc
        if active.items:
            raise NotAllowed(
                "This patient has visits that are booked or under way: cancel or finish them first.",
                "ACTIVE_REGISTRATIONS",
            )
    async with db.writing() as s:
        row = await _owned_row(s, account_id, patient_id)
        bindings = (
            (await s.execute(select(MedicalCardBinding).where(col(MedicalCardBinding.patient_id) == patient_id)))
            .scalars()
            .all()
        )
        _erase(row, bindings, deps.clock.now())
    await deps.invalidate(cache_keys.patients(account_id), cache_keys.cards(patient_id))
    return patient_id


ERASED = "erased"


def _erase(row: Patient, bindings: Sequence[MedicalCardBinding], now: datetime) -> None:
    """Residual information (等保三级 剩余信息保护): a removed patient's personal data is overwritten,
    not just hidden. The row and its ids stay (history, the HIS patient id its visits are filed
    under); the ciphertexts and the blind indexes go, so nothing is left to decrypt or to match,
    and the same person can be added again."""
    row.removed_at = row.updated_at = now
    row.name = ""
    row.document_number_enc = ""
    row.document_number_index = f"{ERASED}:{row.id}"
    row.phone_enc = row.phone_index = None
    row.gender = row.birth_date = row.nationality = row.ethnicity = row.occupation = None
    row.address = row.address_detail = None
    row.health_card_id = row.insurance_person_no = row.insured_area = None
    row.face_verified_at = None
    for binding in bindings:
        binding.card_no_enc = ""
        binding.card_no_index = f"{ERASED}:{binding.id}"


async def patients_of_accounts(
    db: Database, cipher: FieldCipher, account_ids: Sequence[int]
) -> list[list[PatientView]]:
    async with db.reading() as s:
        rows = (
            (
                await s.execute(
                    select(Patient)
                    .where(col(Patient.account_id).in_(account_ids), col(Patient.removed_at).is_(None))
                    .order_by(col(Patient.id))
                )
            )
            .scalars()
            .all()
        )
    grouped: dict[int, list[PatientView]] = {a: [] for a in account_ids}
    for row in rows:
        grouped[row.account_id].append(view_of(row, cipher))
    return [grouped[a] for a in account_ids]


async def of_accounts(deps: Deps, account_ids: Sequence[int]) -> list[list[PatientView]]:
    """Each account's patients, through the shared cache (writes here invalidate it)."""

    async def load(missing: list[int]) -> list[list[PatientView]]:
        return await patients_of_accounts(deps.db, deps.cipher, missing)

    return await deps.cache.many(cache_keys.PATIENTS, account_ids, cache_keys.PATIENTS_TTL, load)


async def cards_of(deps: Deps, patient_ids: Sequence[int]) -> list[list[CardView]]:
    """Each patient's bound cards, through the shared cache (binding invalidates it)."""

    async def load(missing: list[int]) -> list[list[CardView]]:
        return await cards_of_patients(deps.db, deps.cipher, missing)

    return await deps.cache.many(cache_keys.CARDS, patient_ids, cache_keys.PATIENTS_TTL, load)


async def owned(deps: Deps, *, account_id: int, patient_id: int) -> PatientView:
    """One of the account's patients, from the cache; anyone else's does not exist."""
    found = next((p for p in (await of_accounts(deps, [account_id]))[0] if p.id == patient_id), None)
    if found is None:
        raise NotFound("No such patient on this account.")
    return found


async def any_patient(db: Database, cipher: FieldCipher, *, patient_id: int) -> PatientView | None:
    """For staff whose permissions reach every patient (the console checks them)."""
    async with db.reading() as s:
        row = await s.get(Patient, patient_id)
    return view_of(row, cipher) if row is not None and row.removed_at is None else None


async def owned_patient(db: Database, cipher: FieldCipher, *, account_id: int, patient_id: int) -> PatientView:
    async with db.reading() as s:
        return view_of(await _owned_row(s, account_id, patient_id), cipher)


def card_view(row: MedicalCardBinding, cipher: FieldCipher) -> CardView:
    return CardView(
        id=row.id or 0,
        patient_id=row.patient_id,
        card_no=cipher.decrypt(row.card_no_enc, context="card.card_no"),
        card_type=row.card_type,
        his_patient_id=row.his_patient_id,
        bound_at=row.bound_at,
    )


async def cards_of_patients(db: Database, cipher: FieldCipher, patient_ids: Sequence[int]) -> list[list[CardView]]:
    async with db.reading() as s:
        rows = (
            (
                await s.execute(
                    select(MedicalCardBinding)
                    .where(col(MedicalCardBinding.patient_id).in_(patient_ids))
                    .order_by(col(MedicalCardBinding.id))
                )
            )
            .scalars()
            .all()
        )
    grouped: dict[int, list[CardView]] = {p: [] for p in patient_ids}
    for row in rows:
        grouped[row.patient_id].append(card_view(row, cipher))
    return [grouped[p] for p in patient_ids]


def require_complete(patient: PatientView) -> None:
    if patient.missing_fields:
        raise MissingPatientInformation(patient.id, list(patient.missing_fields))
