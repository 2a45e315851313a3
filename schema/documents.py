"""strawberry's ``ValidationCache``, keyed by the query text instead of the parsed document.

``ValidationCache`` memoises validation with an ``lru_cache`` whose key holds the parsed document.
graphql-core 3.3's AST nodes are frozen dataclasses whose hash walks the whole tree, so finding a
cached validation cost the home page ~140 node hashes per request (a sixth of the request under
the profiler). The query text is hashed once per string by Python, and the document is a pure
function of the text and the parse options (``ParserCache`` relies on the same), so keyed by
text the hit is one dict lookup and the answers are unchanged.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import ValidationCache
from strawberry.schema.schema import validate_document


class ValidationResults:
    """One schema's validation errors per (query text, parse options, rules), least recently used dropped."""

    def __init__(self, maxsize: int = 512) -> None:
        self.maxsize = maxsize
        self._entries: OrderedDict[Hashable, list[GraphQLError]] = OrderedDict()

    def get(self, key: Hashable, validate: Callable[[], list[GraphQLError]]) -> list[GraphQLError]:
        entries = self._entries
        found = entries.get(key)
        if found is not None:
            entries.move_to_end(key)
            return found
        errors = validate()
        entries[key] = errors
        if len(entries) > self.maxsize:
            entries.popitem(last=False)
        return errors


class ValidationByQueryText(ValidationCache):
    """Pass it as a factory over one shared ``ValidationResults``: ``lambda: ValidationByQueryText(results)``."""

    def __init__(self, results: ValidationResults) -> None:
        super().__init__(maxsize=results.maxsize)
        self.results = results

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if context.query is None or document is None:
            yield from super().on_validate()
            return
        options: tuple[tuple[str, Any], ...] = tuple(sorted(context.parse_options.items()))
        rules = tuple(context.validation_rules)
        schema = context.schema._schema
        context.pre_execution_errors = self.results.get(
            (context.query, options, rules), lambda: validate_document(schema, document, rules)
        )
        yield
