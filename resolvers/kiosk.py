"""Kiosks and bedside terminals (seed 001): the device is the caller (resolvers/devices.py); the
patient in front of it proves who they are for each transaction and gets a ticket good for a few
minutes, which every following step names.

    ID card on the reader ─┐
    face + ID (camera)  ───┼─▶ ticket (sealed: who, which HIS patient, which device, until when)
                           │      ├─ no record yet: 建档 creates one (the ticket is reissued with it)
                           │      └─ pending bills, pay by QR code, deposit top-up ...

The ticket is sealed with the field key (AES-GCM / SM4-GCM): it cannot be read or forged, is bound
to the device that got it, and holds the ID number only inside the seal. A ticket from another
device, or an old one, is refused with IDENTITY_NOT_VERIFIED: the patient identifies again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from datasources.errors import SourceRejected, SourceUnavailable
from datasources.face import contract as face
from datasources.his import billing as b
from datasources.his import contract as his
from resolvers.deps import Deps
from resolvers.documents import normalize_mobile, parse_resident_id
from resolvers.errors import (
    HIS_DOWN,
    IdentityNotVerified,
    InvalidInput,
    NotAllowed,
    ServiceUnavailable,
    in_service,
)

TICKET_CONTEXT = "kiosk.ticket"
TICKET_TTL = timedelta(minutes=5)
ID_CARD, FACE = "ID_CARD", "FACE"


@dataclass(frozen=True, slots=True)
class Ticket:
    device_account_id: int
    method: str
    name: str
    document_number: str
    his_patient_id: str | None
    card_no: str | None
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Identified:
    token: str
    ticket: Ticket
    cards: list[his.MedicalCard]


def _seal(deps: Deps, ticket: Ticket) -> str:
    payload = {
        "d": ticket.device_account_id, "m": ticket.method, "n": ticket.name, "i": ticket.document_number,
        "h": ticket.his_patient_id, "c": ticket.card_no, "e": ticket.expires_at.isoformat(),
    }
    return deps.cipher.encrypt(json.dumps(payload, ensure_ascii=False), context=TICKET_CONTEXT)


def open_ticket(deps: Deps, token: str, *, device_account_id: int) -> Ticket:
    """The ticket's content, if it is genuine, this device's and still good."""
    try:
        p = json.loads(deps.cipher.decrypt(token, context=TICKET_CONTEXT))
        ticket = Ticket(p["d"], p["m"], p["n"], p["i"], p["h"], p["c"], datetime.fromisoformat(p["e"]))
    except Exception:  # any tampering, truncation or a token of something else
        raise IdentityNotVerified("This ticket is not valid; identify the patient again.") from None
    if ticket.device_account_id != device_account_id or ticket.expires_at <= deps.clock.now():
        raise IdentityNotVerified("This ticket has ended; identify the patient again.")
    return ticket


async def _identified(deps: Deps, device_account_id: int, method: str, name: str, number: str) -> Identified:
    cards = await in_service(deps.sources.his.find_cards(name=name, document_number=number))
    first = cards[0] if cards else None
    ticket = Ticket(
        device_account_id=device_account_id, method=method, name=name, document_number=number,
        his_patient_id=first.his_patient_id if first else None, card_no=first.card_no if first else None,
        expires_at=deps.clock.now() + TICKET_TTL,
    )
    return Identified(_seal(deps, ticket), ticket, cards)


def _resident(deps: Deps, name: str, number: str) -> tuple[str, str]:
    name = name.strip()
    if not 1 <= len(name) <= 32:
        raise InvalidInput("name", "Send the name as read from the ID card.")
    return name, parse_resident_id(number, today=deps.clock.now().date()).number


async def identify_by_id_card(deps: Deps, *, device_account_id: int, name: str, number: str) -> Identified:
    """The ID card on the device's certified reader: its chip vouches for name and number."""
    name, number = _resident(deps, name, number)
    return await _identified(deps, device_account_id, ID_CARD, name, number)


async def identify_by_face(
    deps: Deps, *, device_account_id: int, name: str, number: str, capture_token: str
) -> Identified:
    """Without the card: the typed name and number, and the camera's live capture matching them."""
    name, number = _resident(deps, name, number)
    verifier = deps.sources.face
    if verifier is None:
        raise NotAllowed("Face verification is not available at this hospital; use the ID card.", "NOT_ENABLED")
    try:
        match = await verifier.verify(capture_token=capture_token, name=name, id_no=number)
    except SourceRejected as exc:
        reasons = {face.CAPTURE_EXPIRED: "The photo is too old; look at the camera again.",
                   face.CAPTURE_USED: "Look at the camera again."}
        raise IdentityNotVerified(reasons.get(exc.code, "Look at the camera again.")) from exc
    except SourceUnavailable as exc:
        raise ServiceUnavailable("Face verification is not answering; use the ID card or try again.") from exc
    if not match.matched:
        raise IdentityNotVerified("The face does not match this ID; use the ID card or ask at the desk.")
    return await _identified(deps, device_account_id, FACE, name, number)


async def create_record(
    deps: Deps, *, device_account_id: int, token: str, phone: str, address: str | None
) -> Identified:
    """建档 at the kiosk for a patient the HIS does not know yet; birth date and gender come from the ID."""
    ticket = open_ticket(deps, token, device_account_id=device_account_id)
    if ticket.his_patient_id is not None:
        raise NotAllowed("This patient already has a hospital record.", "RECORD_EXISTS")
    resident = parse_resident_id(ticket.document_number, today=deps.clock.now().date())
    record = his.PatientRecordInput(
        name=ticket.name, document_type="RESIDENT_ID", document_number=ticket.document_number,
        gender=resident.gender, birth_date=resident.birth_date, phone=normalize_mobile(phone), nationality="CHN",
        address=(address or "").strip()[:255] or None,
    )
    try:
        await deps.sources.his.create_record(record)
    except SourceRejected as exc:
        if exc.code != his.RECORD_EXISTS:
            raise
    except SourceUnavailable as exc:
        raise ServiceUnavailable(HIS_DOWN) from exc
    return await _identified(deps, device_account_id, ticket.method, ticket.name, ticket.document_number)


def require_record(ticket: Ticket) -> tuple[str, str]:
    if ticket.his_patient_id is None or ticket.card_no is None:
        raise NotAllowed("This patient has no hospital record yet: create one first (建档).", "NO_RECORD")
    return ticket.his_patient_id, ticket.card_no



async def pending_bills(deps: Deps, *, device_account_id: int, token: str) -> list[b.Bill]:
    ticket = open_ticket(deps, token, device_account_id=device_account_id)
    his_patient_id, _ = require_record(ticket)
    if deps.sources.billing is None:
        raise ServiceUnavailable("The hospital's billing is not available; please pay at the cashier.")
    return await in_service(deps.sources.billing.pending_bills([his_patient_id]))
