"""Writes the printed schema to schema.graphql: `make schema` (front ends depend on it)."""

from __future__ import annotations

from pathlib import Path

from strawberry.printer import print_schema

from schema.root import build_schema

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


def printed() -> str:
    return print_schema(build_schema()) + "\n"


if __name__ == "__main__":
    SCHEMA_FILE.write_text(printed(), encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}")
