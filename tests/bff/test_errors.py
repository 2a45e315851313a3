"""Subscriptions follow the same error policy as queries, applied where the stream fails."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from graphql import GraphQLError

from bff.errors import guarded
from resolvers.errors import NotFound


async def _failing(exc: Exception) -> AsyncIterator[int]:
    yield 1
    raise exc


async def test_a_business_error_keeps_its_message_and_code() -> None:
    stream = guarded(_failing(NotFound("No such registration on this account.")), "req-1")
    assert await anext(stream) == 1
    with pytest.raises(GraphQLError) as raised:
        await anext(stream)
    assert raised.value.message == "No such registration on this account."
    assert raised.value.extensions == {"code": "NOT_FOUND"}


async def test_an_unexpected_error_is_masked_with_the_request_id(caplog: pytest.LogCaptureFixture) -> None:
    stream = guarded(_failing(RuntimeError("password=hunter2 at db.py:12")), "req-2")
    await anext(stream)
    with pytest.raises(GraphQLError) as raised:
        await anext(stream)
    assert "hunter2" not in raised.value.message and "req-2" in raised.value.message
    assert raised.value.extensions == {"code": "INTERNAL_ERROR", "requestId": "req-2"}
    assert "req-2" in caplog.text
