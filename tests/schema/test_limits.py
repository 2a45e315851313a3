"""The served schema refuses documents beyond its limits before executing anything."""

from __future__ import annotations

from schema.root import build_schema


async def test_too_deep_and_too_many_aliases_are_refused_in_validation() -> None:
    schema = build_schema()
    deep = "{ departments " + "{ children " * 12 + "{ id }" + " }" * 13  # 14 levels: past the limit of 12
    refused = await schema.execute(deep)
    assert refused.data is None and refused.errors
    assert "exceeds maximum operation depth" in refused.errors[0].message
    aliases = "{ " + " ".join(f"a{i}: __typename" for i in range(31)) + " }"
    refused = await schema.execute(aliases)
    assert refused.data is None and refused.errors
    assert "aliases" in refused.errors[0].message.lower()
    allowed = "{ " + " ".join(f"a{i}: __typename" for i in range(30)) + " }"
    assert (await schema.execute(allowed)).errors is None
