"""The lean executor answers exactly as graphql-core's own: data, errors, paths, null propagation."""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import AsyncGenerator
from enum import Enum
from typing import Any

import pytest
import strawberry
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.permission import BasePermission

from schema.execution import LeanExecutionContext, plans_of
from schema.root import build_schema


@strawberry.enum
class Colour(Enum):
    RED = "red"
    BLUE = "blue"


class Deny(BasePermission):
    message = "not for you"

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return False


@strawberry.interface
class Node:
    id: strawberry.ID


@strawberry.type
class Thing(Node):
    label: str


@strawberry.type
class Leaf:
    name: str
    colour: Colour
    maybe: str | None
    must: str  # set to None below: a non-null violation, caught by the nearest nullable parent
    at: dt.datetime
    secret: str = strawberry.field(default="s", permission_classes=[Deny])

    @strawberry.field
    def shout(self, times: int = 1) -> str:
        return self.name.upper() * times


@strawberry.type
class Holder:
    leaf: Leaf
    leaves: list[Leaf]
    optional_leaf: Leaf | None
    broken: Leaf | None
    thing: Node
    count: int

    @strawberry.field
    async def later(self) -> Leaf:
        return self.leaf


def _leaf(name: str, must: Any = "here") -> Leaf:
    return Leaf(name=name, colour=Colour.BLUE, maybe=None, must=must, at=dt.datetime(2026, 11, 22, 8, 30))


@strawberry.type
class Query:
    @strawberry.field
    def holder(self) -> Holder:
        return Holder(
            leaf=_leaf("a"),
            leaves=[_leaf("b"), _leaf("c", must=None), _leaf("d")],
            optional_leaf=None,
            broken=_leaf("e", must=None),
            thing=Thing(id=strawberry.ID("7"), label="seven"),
            count=3,
        )


QUERIES = [
    "{ holder { count leaf { name colour maybe must at } } }",
    "{ holder { leaves { name must } } }",  # the null climbs to `holder`, the first nullable parent
    "{ holder { broken { name must } optionalLeaf { name } } }",
    "{ holder { thing { __typename id ... on Thing { label } } } }",
    "{ holder { later { name shout(times: 2) } count } }",
    "{ holder { leaf { name secret } } }",
    "{ holder { a: leaf { n: name } b: leaf { colour } leaf { name @skip(if: true) must @include(if: true) } } }",
    "query { holder { ...F } } fragment F on Holder { count leaf { ...G } } fragment G on Leaf { name at }",
]


def _answer(result: Any) -> tuple[Any, list[tuple[str, Any]]]:
    return result.data, [(e.message, e.path) for e in result.errors or []]


@pytest.mark.parametrize("query", QUERIES)
async def test_the_lean_executor_answers_as_graphql_core_does(query: str) -> None:
    plain = strawberry.Schema(query=Query, types=[Thing])
    lean = strawberry.Schema(query=Query, types=[Thing], execution_context_class=LeanExecutionContext)
    expected, got = _answer(await plain.execute(query)), _answer(await lean.execute(query))
    assert got == expected
    assert expected[0] is not None or expected[1]  # the query did something worth comparing
    assert all("Unknown" not in message for message, _ in expected[1])  # and was valid


async def test_the_lean_path_is_taken_for_plain_fields_and_only_for_them() -> None:
    lean = strawberry.Schema(query=Query, execution_context_class=LeanExecutionContext)
    leaf = plans_of(lean._schema.type_map["Leaf"])  # type: ignore[arg-type]
    assert leaf["name"] is not None and leaf["colour"] is not None and leaf["at"] is not None
    assert leaf["colour"].enum_names == {Colour.RED: "RED", Colour.BLUE: "BLUE"}  # type: ignore[union-attr]
    assert leaf["secret"] is None  # a permission class is a field extension: the general path
    assert leaf["shout"] is None  # a resolver
    holder = plans_of(lean._schema.type_map["Holder"])  # type: ignore[arg-type]
    assert holder["leaf"] is not None and holder["later"] is None
    assert holder["thing"] is None  # an interface: its runtime type is resolved the general way
    # the project's schema: a registration's and a doctor's plain fields take it
    project = build_schema()._schema
    assert plans_of(project.type_map["Registration"])["status"] is not None  # type: ignore[arg-type]
    assert plans_of(project.type_map["Doctor"])["name"] is not None  # type: ignore[arg-type]


async def test_an_operation_leaves_no_cycles_for_the_collector() -> None:
    """Reference counting frees an operation's executor and what it memoised when the answer is out;
    graphql-core's own executor is a reference cycle (hundreds of objects per request left for full
    collections, which then stalled every request in the process)."""
    query = QUERIES[0]

    async def garbage_of(schema: strawberry.Schema) -> int:
        await schema.execute(query)
        gc.collect()
        gc.disable()
        try:
            for _ in range(20):
                assert (await schema.execute(query)).errors is None
            return gc.collect()
        finally:
            gc.enable()

    caches = [lambda: ParserCache(maxsize=8), lambda: ValidationCache(maxsize=8)]  # parsing makes cycles too
    plain = strawberry.Schema(query=Query, types=[Thing], extensions=caches)
    lean = strawberry.Schema(
        query=Query, types=[Thing], extensions=caches, execution_context_class=LeanExecutionContext
    )
    assert await garbage_of(plain) >= 20 * 20  # the comparison can tell
    assert await garbage_of(lean) <= 20 * 2


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def leaves(self, count: int) -> AsyncGenerator[Leaf, None]:
        for i in range(count):
            yield _leaf(f"tick {i}", must=None if i == 1 else "here")  # the second event breaks a non-null

    @strawberry.subscription(permission_classes=[Deny])
    async def secrets(self) -> AsyncGenerator[str, None]:
        yield "never"


async def _events(schema: strawberry.Schema, query: str) -> list[tuple[Any, list[tuple[str, Any]]]]:
    stream = await schema.subscribe(query)
    if not hasattr(stream, "__aiter__"):
        return [_answer(stream)]
    return [_answer(result) async for result in stream]


@pytest.mark.parametrize(
    "query",
    [
        "subscription { leaves(count: 3) { name colour must at } }",
        "subscription { a: leaves(count: 2) { n: name } }",
        "subscription { secrets }",
    ],
)
async def test_subscription_events_are_answered_as_graphql_core_does(query: str) -> None:
    plain = strawberry.Schema(query=Query, subscription=Subscription, types=[Thing])
    lean = strawberry.Schema(
        query=Query, subscription=Subscription, types=[Thing], execution_context_class=LeanExecutionContext
    )
    expected = await _events(plain, query)
    assert await _events(lean, query) == expected
    assert expected  # something was compared
    root = plans_of(lean._schema.type_map["Subscription"])  # type: ignore[arg-type]
    assert root["leaves"] is not None and root["leaves"].attribute == ""  # each event takes the short way
