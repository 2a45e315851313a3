"""The front ends build against schema.graphql: it must match the running schema."""

from __future__ import annotations

from schema.export import SCHEMA_FILE, printed


def test_schema_graphql_is_regenerated_whenever_the_schema_changes() -> None:
    committed = SCHEMA_FILE.read_text(encoding="utf-8")
    assert committed == printed(), "The schema changed: run `make schema` and commit schema.graphql."
