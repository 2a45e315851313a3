"""Provincial credit platform (省失信平台): is this person in default, here or elsewhere?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

GOOD = "GOOD"
DEFAULTED_HERE = "DEFAULTED_HERE"  # 本院欠费: arrears at this hospital
DEFAULTED_ELSEWHERE = "DEFAULTED_ELSEWHERE"  # 仅他院欠费: arrears only at other hospitals
UNKNOWN = "UNKNOWN"  # the platform does not know the person; never treated as GOOD


@dataclass(frozen=True, slots=True)
class CreditReport:
    status: str
    arrears_here_fen: int
    appeal_url: str


class CreditPlatform(Protocol):
    async def status(self, *, name: str, document_number: str) -> CreditReport:
        """Raises ``SourceUnavailable`` when the platform is down or too slow."""
        ...

    async def report_arrears(self, *, name: str, document_number: str, arrears_fen: int) -> None:
        """The hospital reports what the person owes it now (0: they paid, the default is lifted).
        Reporting the current amount, not a change, makes a repeated report harmless."""
        ...
