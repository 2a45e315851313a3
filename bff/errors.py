"""GraphQL-wide error policy: domain errors keep their message and code; the rest is masked.

A masked error is logged with the request id, which the client also receives, so an operator can
find the stack trace from what a user reports. Messages never carry internals.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from resolvers.errors import DomainError

log = logging.getLogger("bff.errors")


class ErrorPolicy(SchemaExtension):
    _streamed = False

    def on_operation(self) -> Iterator[None]:
        yield
        if not self._streamed:
            self._shape_result(self.execution_context.result)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        """Subscriptions: each result is shaped before it reaches the socket, not when the stream ends."""
        self._streamed = True
        self._shape_result(result)
        yield

    def _shape_result(self, result: Any) -> None:
        errors = getattr(result, "errors", None)
        if result is None or not errors:
            return
        request_id = getattr(self.execution_context.context, "request_id", "")
        result.errors = [self._shape(error, request_id) for error in errors]

    @staticmethod
    def _shape(error: GraphQLError, request_id: str) -> GraphQLError:
        original = error.original_error
        if original is None:
            # Syntax, validation and permission errors: addressed to the client, keep them.
            extensions = dict(error.extensions or {})
            extensions.setdefault("code", "BAD_REQUEST")
            return GraphQLError(error.message, error.nodes, error.source, error.positions, error.path, None, extensions)
        if isinstance(original, DomainError):
            return GraphQLError(
                original.message, error.nodes, error.source, error.positions, error.path, None,
                {"code": original.code},
            )
        if error.extensions and "code" in error.extensions:
            return error
        log.error(
            "unexpected error in %s (request %s)", ".".join(map(str, error.path or [])) or "operation", request_id,
            exc_info=(type(original), original, original.__traceback__),
        )
        return GraphQLError(
            f"Something went wrong on our side; quote request id {request_id} to the hospital's IT team.",
            error.nodes, error.source, error.positions, error.path, None,
            {"code": "INTERNAL_ERROR", "requestId": request_id},
        )
