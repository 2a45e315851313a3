"""The mobile insurance sandbox: the platform in the database, committing on its own like a remote system.

It refuses what the platform refuses (unknown, expired or used ``payAuthNo``; totals that are not the
items' sum; orders whose account shares exceed the balances; a second refund; cancelling after the
order) and moves the balances exactly, in integer fen, in the same transaction as the status.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from urllib.parse import urlencode, urlsplit, urlunsplit

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from datasources.clock import Clock
from datasources.errors import SourceRejected
from datasources.mobile_insurance import contract as c
from datasources.mobile_insurance.tables import (
    MipayAuthorization,
    MipayFeeItem,
    MipayInsuredPerson,
    MipayRefund,
    MipayUpload,
)
from datasources.mobile_insurance.wire import AUTH_PAGE
from datasources.store.db import Database

SOURCE = "mobile_insurance"


def _reject(code: str, detail: str = "") -> SourceRejected:
    return SourceRejected(SOURCE, code, detail)


def _order(row: MipayUpload) -> c.Order:
    split = c.Split(row.total_fen, row.fund_fen, row.personal_fen, row.family_fen, row.own_pay_fen)
    return c.Order(row.pay_ord_id, row.med_org_ord, row.status, split)


class SandboxMobileInsurance:
    """Implements ``MobileInsurance`` over its own ``mipay_`` tables, splitting by ``rules``."""

    def __init__(self, db: Database, clock: Clock, rules: c.SplitRules, *, page_base_url: str) -> None:
        self.db = db
        self.clock = clock
        self.rules = rules
        self.page_base_url = page_base_url.rstrip("/")

    # Authorization ---------------------------------------------------------------------------
    def authorize_url(self, return_url: str, state: str) -> str:
        return f"{self.page_base_url}{AUTH_PAGE}?{urlencode({'returnUrl': return_url, 'state': state})}"

    async def authorize(self, *, id_no: str, name: str, return_url: str, state: str) -> str:
        """What the authorization page does when the insured person confirms: the redirect back."""
        now = self.clock.now()
        async with self.db.writing() as s:
            person = (
                await s.execute(select(MipayInsuredPerson).where(col(MipayInsuredPerson.id_no) == id_no.upper()))
            ).scalar_one_or_none()
            if person is None or person.name != name:
                raise _reject(c.PERSON_NOT_FOUND, "no insured person with this name and ID number")
            auth = MipayAuthorization(
                auth_code=secrets.token_hex(16),
                pay_auth_no=f"AUTH{secrets.token_hex(14).upper()}",
                person_id=person.id or 0,
                created_at=now,
                expires_at=now + timedelta(seconds=self.rules.auth_ttl_seconds),
            )
            s.add(auth)
        parts = urlsplit(return_url)
        query = "&".join(q for q in (parts.query, urlencode({"authCode": auth.auth_code, "state": state})) if q)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))

    async def authorization(self, auth_code: str) -> c.Authorization:
        async with self.db.reading() as s:
            row = (
                await s.execute(
                    select(MipayAuthorization, MipayInsuredPerson)
                    .join(MipayInsuredPerson, col(MipayInsuredPerson.id) == col(MipayAuthorization.person_id))
                    .where(col(MipayAuthorization.auth_code) == auth_code)
                )
            ).one_or_none()
        if row is None:
            raise _reject(c.AUTH_CODE_UNKNOWN, "the authCode is not one the authorization page gave")
        auth, person = row
        if auth.expires_at <= self.clock.now():
            raise _reject(c.PAY_AUTH_EXPIRED, "the authorization has expired; authorize again")
        return c.Authorization(
            auth.pay_auth_no, person.name, person.id_no, person.insurance_area, int(auth.expires_at.timestamp())
        )

    # 6201 ------------------------------------------------------------------------------------
    async def upload_fees(self, upload: c.FeeUpload) -> c.Uploaded:
        now = self.clock.now()
        if not upload.items or any(item.amount_fen <= 0 for item in upload.items):
            raise _reject(c.BAD_REQUEST, "an upload has items, each of a positive amount")
        if len({item.seq for item in upload.items}) != len(upload.items):
            raise _reject(c.BAD_REQUEST, "feedetlSn repeats within the upload")
        if sum(item.amount_fen for item in upload.items) != upload.total_fen:
            raise _reject(c.AMOUNT_MISMATCH, "medfeeSumamt is not the sum of the items")
        try:
            async with self.db.writing() as s:
                auth = (
                    await s.execute(
                        select(MipayAuthorization).where(col(MipayAuthorization.pay_auth_no) == upload.pay_auth_no)
                    )
                ).scalar_one_or_none()
                if auth is None:
                    raise _reject(c.PAY_AUTH_UNKNOWN, "unknown payAuthNo")
                if auth.expires_at <= now:
                    raise _reject(c.PAY_AUTH_EXPIRED, "the payAuthNo has expired")
                used = await s.execute(
                    update(MipayAuthorization)
                    .where(col(MipayAuthorization.id) == auth.id, col(MipayAuthorization.used_at).is_(None))
                    .values(used_at=now)
                )
                if used.rowcount != 1:  # type: ignore[attr-defined]
                    raise _reject(c.PAY_AUTH_USED, "the payAuthNo was already used for an upload")
                person = await s.get(MipayInsuredPerson, auth.person_id)
                assert person is not None
                if person.id_no != upload.id_no.upper() or person.name != upload.name:
                    raise _reject(c.IDENTITY_MISMATCH, "the payAuthNo was given to another person")
                split = self.rules.split(
                    upload.items,
                    personal_balance_fen=person.personal_balance_fen,
                    family_balance_fen=person.family_balance_fen,
                    use_personal_account=upload.use_personal_account,
                )
                row = MipayUpload(
                    pay_ord_id=f"ORD{now:%Y%m%d}{secrets.token_hex(10).upper()}",
                    pay_token=secrets.token_hex(16),
                    pay_auth_no=upload.pay_auth_no,
                    person_id=person.id or 0,
                    org_code=upload.org_code,
                    med_org_ord=upload.med_org_ord,
                    status=c.UPLOADED,
                    total_fen=split.total_fen,
                    fund_fen=split.fund_fen,
                    personal_fen=split.personal_account_fen,
                    family_fen=split.family_account_fen,
                    own_pay_fen=split.own_pay_fen,
                    created_at=now,
                )
                s.add(row)
                await s.flush()
                s.add_all(
                    MipayFeeItem(
                        upload_id=row.id or 0,
                        seq=i.seq,
                        code=i.code,
                        name=i.name,
                        category=i.category,
                        amount_fen=i.amount_fen,
                    )
                    for i in upload.items
                )
        except IntegrityError as exc:
            raise _reject(c.DUPLICATE_ORDER, "this medOrgOrd was already uploaded") from exc
        return c.Uploaded(_order(row), row.pay_token)

    async def _upload(self, s: AsyncSession, pay_ord_id: str, pay_token: str | None = None) -> MipayUpload:
        row = (
            await s.execute(select(MipayUpload).where(col(MipayUpload.pay_ord_id) == pay_ord_id))
        ).scalar_one_or_none()
        if row is None:
            raise _reject(c.ORDER_NOT_FOUND, f"no order {pay_ord_id}")
        if pay_token is not None and not secrets.compare_digest(row.pay_token, pay_token):
            raise _reject(c.PAY_TOKEN_MISMATCH, "the payToken is not this order's")
        return row

    async def _move(self, s: AsyncSession, person_id: int, personal: int, family: int) -> bool:
        """Adds to (or, negative, takes from) the balances; False when a balance would go below zero."""
        moved = await s.execute(
            update(MipayInsuredPerson)
            .where(
                col(MipayInsuredPerson.id) == person_id,
                col(MipayInsuredPerson.personal_balance_fen) + personal >= 0,
                col(MipayInsuredPerson.family_balance_fen) + family >= 0,
            )
            .values(
                personal_balance_fen=col(MipayInsuredPerson.personal_balance_fen) + personal,
                family_balance_fen=col(MipayInsuredPerson.family_balance_fen) + family,
            )
        )
        return bool(moved.rowcount == 1)  # type: ignore[attr-defined]

    async def _transition(self, s: AsyncSession, row: MipayUpload, to: str, conflict: str, **values: object) -> None:
        """Moves ``row`` to ``to`` only from the status it was read in; ``conflict`` when another call won."""
        moved = await s.execute(
            update(MipayUpload)
            .where(col(MipayUpload.id) == row.id, col(MipayUpload.status) == row.status)
            .values(status=to, **values)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            raise _reject(conflict, "the order changed meanwhile")
        row.status = to

    # 6202 ------------------------------------------------------------------------------------
    async def place_order(self, *, pay_ord_id: str, pay_token: str) -> c.Order:
        now = self.clock.now()
        async with self.db.writing() as s:
            row = await self._upload(s, pay_ord_id, pay_token)
            if row.status == c.PAID or row.status == c.REFUNDED:
                raise _reject(c.ALREADY_PAID, "the order was already placed")
            if row.status == c.CANCELLED:
                raise _reject(c.ALREADY_CANCELLED, "the upload was cancelled")
            await self._transition(s, row, c.PAID, c.ALREADY_PAID, paid_at=now)
            if not await self._move(s, row.person_id, -row.personal_fen, -row.family_fen):
                raise _reject(
                    c.INSUFFICIENT_PERSONAL_ACCOUNT, "the account balances no longer cover the shares fixed at upload"
                )
        return _order(row)

    # 6203 ------------------------------------------------------------------------------------
    async def refund(self, *, pay_ord_id: str, refund_sn: str, reason: str) -> c.Refund:
        now = self.clock.now()
        try:
            async with self.db.writing() as s:
                row = await self._upload(s, pay_ord_id)
                if row.status == c.REFUNDED:
                    raise _reject(c.ALREADY_REFUNDED, "the insurance part was already refunded")
                if row.status != c.PAID:
                    raise _reject(c.NOT_PAID, "only a placed order can be refunded")
                s.add(
                    MipayRefund(
                        upload_id=row.id or 0,
                        refund_sn=refund_sn,
                        reason=reason[:255],
                        fund_fen=row.fund_fen,
                        personal_fen=row.personal_fen,
                        family_fen=row.family_fen,
                        created_at=now,
                    )
                )
                await s.flush()
                await self._transition(s, row, c.REFUNDED, c.ALREADY_REFUNDED)
                await self._move(s, row.person_id, row.personal_fen, row.family_fen)
        except IntegrityError as exc:
            raise _reject(c.ALREADY_REFUNDED, "the insurance part was already refunded") from exc
        return c.Refund(row.pay_ord_id, refund_sn, row.fund_fen, row.personal_fen, row.family_fen)

    # 6301 ------------------------------------------------------------------------------------
    async def query(self, *, pay_ord_id: str) -> c.Order:
        async with self.db.reading() as s:
            return _order(await self._upload(s, pay_ord_id))

    # 6401 ------------------------------------------------------------------------------------
    async def cancel_upload(self, *, pay_ord_id: str, pay_token: str, reason: str) -> c.Order:
        now = self.clock.now()
        async with self.db.writing() as s:
            row = await self._upload(s, pay_ord_id, pay_token)
            if row.status == c.CANCELLED:
                raise _reject(c.ALREADY_CANCELLED, "the upload was already cancelled")
            if row.status != c.UPLOADED:
                raise _reject(c.CANCEL_AFTER_ORDER, "the order was placed: refund it instead")
            await self._transition(s, row, c.CANCELLED, c.CANCEL_AFTER_ORDER, cancelled_at=now)
        return _order(row)


class SandboxMobileInsuranceAdmin:
    """Sets the sandbox up: insured persons and their balances (what the platform's own systems hold)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_insured_person(
        self, *, id_no: str, name: str, insurance_area: str, personal_balance_fen: int, family_balance_fen: int = 0
    ) -> None:
        async with self.db.writing() as s:
            s.add(
                MipayInsuredPerson(
                    id_no=id_no.upper(),
                    name=name,
                    insurance_area=insurance_area,
                    personal_balance_fen=personal_balance_fen,
                    family_balance_fen=family_balance_fen,
                )
            )

    async def balances(self, id_no: str) -> tuple[int, int]:
        """(personal, family) balances in fen."""
        async with self.db.reading() as s:
            person = (
                await s.execute(select(MipayInsuredPerson).where(col(MipayInsuredPerson.id_no) == id_no.upper()))
            ).scalar_one()
        return person.personal_balance_fen, person.family_balance_fen
