"""Validation is cached by query text: once per distinct text, same errors as uncached."""

from __future__ import annotations

from typing import Any

import pytest
import strawberry
from strawberry.extensions import ParserCache

import schema.documents as documents
from schema.documents import ValidationByQueryText, ValidationResults


@strawberry.type
class Query:
    @strawberry.field
    def greeting(self, name: str) -> str:
        return f"hello {name}"


async def test_each_text_is_validated_once_and_errors_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = documents.validate_document

    def counting(schema: Any, document: Any, rules: Any) -> Any:
        calls.append(document.loc.source.body)
        return real(schema, document, rules)

    monkeypatch.setattr(documents, "validate_document", counting)
    results = ValidationResults(maxsize=2)
    cached = strawberry.Schema(
        query=Query, extensions=[lambda: ParserCache(maxsize=8), lambda: ValidationByQueryText(results)]
    )
    plain = strawberry.Schema(query=Query)
    good, bad, other = '{ greeting(name: "a") }', "{ greeting }", '{ b: greeting(name: "b") }'
    for _ in range(3):
        for query in (good, bad):
            got, expected = await cached.execute(query), await plain.execute(query)
            assert got.data == expected.data
            assert [e.message for e in got.errors or []] == [e.message for e in expected.errors or []]
    assert calls == [good, bad]
    assert (await cached.execute(other)).data == {"b": "hello b"}
    await cached.execute(bad)  # the least recently used (good) gave way to `other`; bad is still there
    await cached.execute(good)
    assert calls == [good, bad, other, good]
