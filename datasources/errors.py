"""The small family of errors an external system can raise; transport errors never leave datasources/."""

from __future__ import annotations


class SourceError(Exception):
    """Base of everything an external system (or its sandbox) can fail with."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.message = message


class SourceUnavailable(SourceError):
    """The system did not answer in time or is down; the outcome of a write is unknown."""


class SourceRejected(SourceError):
    """The system answered and refused: ``code`` is stable and mapped to a business outcome."""

    def __init__(self, source: str, code: str, detail: str = "") -> None:
        super().__init__(source, f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
