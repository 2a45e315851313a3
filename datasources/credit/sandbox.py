"""Credit platform sandbox: people, their arrears per hospital, and an on/off switch for outages."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import col

from datasources.credit import contract as c
from datasources.credit.tables import CreditControl, CreditRecord
from datasources.errors import SourceUnavailable
from datasources.store.db import Database

APPEAL_URL = "https://credit.example.gov.cn/appeal"


class SandboxCreditPlatform:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def status(self, *, name: str, document_number: str) -> c.CreditReport:
        async with self.db.reading() as s:
            control = await s.get(CreditControl, 1)
            if control is not None and not control.available:
                raise SourceUnavailable("credit", "the provincial credit platform is not answering")
            row = (
                await s.execute(
                    select(CreditRecord).where(col(CreditRecord.document_number) == document_number.strip().upper())
                )
            ).scalar_one_or_none()
        if row is None or row.name != name:
            return c.CreditReport(status=c.UNKNOWN, arrears_here_fen=0, appeal_url=APPEAL_URL)
        if row.arrears_here_fen > 0:
            status = c.DEFAULTED_HERE
        elif row.arrears_elsewhere_fen > 0:
            status = c.DEFAULTED_ELSEWHERE
        else:
            status = c.GOOD
        return c.CreditReport(status=status, arrears_here_fen=row.arrears_here_fen, appeal_url=APPEAL_URL)

    async def report_arrears(self, *, name: str, document_number: str, arrears_fen: int) -> None:
        if arrears_fen < 0:
            raise ValueError("arrears are not negative")
        async with self.db.writing() as s:
            control = await s.get(CreditControl, 1)
            if control is not None and not control.available:
                raise SourceUnavailable("credit", "the provincial credit platform is not answering")
            key = document_number.strip().upper()
            row = await s.get(CreditRecord, key)
            if row is None:
                if arrears_fen == 0:
                    return
                row = CreditRecord(document_number=key, name=name, arrears_here_fen=0, arrears_elsewhere_fen=0)
                s.add(row)
            row.arrears_here_fen = arrears_fen

    # Sandbox operations: what the platform's own staff (or a test) would do.
    async def put_record(
        self, *, name: str, document_number: str, arrears_here_fen: int = 0, arrears_elsewhere_fen: int = 0
    ) -> None:
        async with self.db.writing() as s:
            key = document_number.strip().upper()
            row = await s.get(CreditRecord, key)
            if row is None:
                row = CreditRecord(document_number=key, name=name)
                s.add(row)
            row.name = name
            row.arrears_here_fen = arrears_here_fen
            row.arrears_elsewhere_fen = arrears_elsewhere_fen

    async def set_available(self, available: bool) -> None:
        async with self.db.writing() as s:
            control = await s.get(CreditControl, 1)
            if control is None:
                s.add(CreditControl(id=1, available=available))
            else:
                control.available = available
