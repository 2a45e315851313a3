"""A leaner executor for the fields that only read an attribute.

Most of a page's fields are plain attributes of objects the resolvers already loaded (a
registration's ``status``, a doctor's ``name``). graphql-core resolves each of them the general
way: a resolve-info tuple, strawberry's resolver wrapper, two awaitable checks and a walk through
``complete_value``. That is ~8 µs a field, and the home page executes ~150 of them.

``LeanExecutionContext`` answers those fields directly: read the attribute, coerce it with the
field's own scalar or enum, and, for an object, go straight to its sub-selection. Which fields
qualify is decided once per type from the schema: no resolver, no field extensions (permission
classes are extensions), no arguments, strawberry's default ``getattr`` resolver, and for objects
no ``is_type_of`` check. Everything else, and every error, takes graphql-core's own path, so
answers, error messages, paths and null propagation are the same; a test compares both executors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from enum import Enum
from typing import Any, NamedTuple

from graphql import (
    ExecutionResult,
    GraphQLEnumType,
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfoHelpers,
    is_leaf_type,
    is_object_type,
)
from graphql.pyutils import Path, Undefined, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField


class _Plan(NamedTuple):
    attribute: str
    return_type: GraphQLOutputType  # as declared, NonNull included
    named: Any  # the leaf or object type inside
    leaf: bool
    non_null: bool
    enum_names: dict[Any, str] | None = None  # a strawberry enum's members and their GraphQL names


THE_EVENT = ""  # a plan's attribute for a subscription's root field: the value is the event itself


def _plan_field(field: GraphQLField) -> _Plan | None:
    definition = field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(definition, StrawberryField):
        return None
    if definition.is_subscription and field.subscribe is not None:
        # Each event of a subscription is executed with the event as the root value, and strawberry
        # resolves the root field to it (`lambda event, *_, **__: event`); its arguments served the
        # subscribe step and are not needed again. One event per subscriber: worth the short way.
        return _plan_of(THE_EVENT, field)
    if not definition.is_basic_field or field.args:
        return None
    if definition.default_resolver is not getattr or field.resolve is None:
        return None
    # strawberry's own resolver for basic fields; any other (exception handlers) takes the long way
    if getattr(field.resolve, "__name__", "") != "_get_basic_result":
        return None
    return _plan_of(definition.python_name, field)


def _plan_of(attribute: str, field: GraphQLField) -> _Plan | None:
    return_type = field.type
    non_null = isinstance(return_type, GraphQLNonNull)
    named: Any = return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
    if is_leaf_type(named):
        return _Plan(attribute, return_type, named, True, non_null, _enum_names(named))
    if is_object_type(named) and not named.is_type_of:
        return _Plan(attribute, return_type, named, False, non_null)
    return None


def _enum_names(leaf: Any) -> dict[Any, str] | None:
    """strawberry's enum types find a member's name by scanning every value; the same answer,
    precomputed (the first name whose value equals the member's, as that scan returns)."""
    wrapped = getattr(leaf, "wrapped_cls", None)
    if not isinstance(leaf, GraphQLEnumType) or not isinstance(wrapped, type) or not issubclass(wrapped, Enum):
        return None
    names: dict[Any, str] = {}
    for member in wrapped:
        name = next((n for n, v in leaf.values.items() if v.value == member.value), None)
        if name is not None:
            names[member] = name
    return names


_plans: dict[GraphQLObjectType, dict[str, _Plan | None]] = {}


def plans_of(parent_type: GraphQLObjectType) -> dict[str, _Plan | None]:
    plans = _plans.get(parent_type)
    if plans is None:
        plans = {name: _plan_field(field) for name, field in parent_type.fields.items()}
        _plans[parent_type] = plans
    return plans


def _track_after_finish(values: Sequence[Any]) -> None:
    raise RuntimeError("this operation has finished executing; no more work can be tracked for it")


async def _gather(values: Sequence[Awaitable[Any]]) -> list[Any]:
    return await gather_with_cancel(*values)


_FINISHED = GraphQLResolveInfoHelpers(gather=_gather, track=_track_after_finish)


class LeanExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor, with plain attribute fields answered without the general machinery."""

    def build_response(self, data: dict[str, Any] | None) -> Any:
        """Also breaks the executor's reference cycle once its answer is complete.

        graphql-core keeps ``async_helpers``, built from the executor's own bound methods, on the
        executor: a cycle, so every executor and all it memoised (~300 objects for the home page)
        outlived its request until a full collection walked them: 0.5 s pauses every few thousand
        requests. Without the cycle, reference counting frees them when the request ends."""
        response = super().build_response(data)
        if isinstance(response, ExecutionResult) and not self.background_futures:
            self.async_helpers = _FINISHED
        return response

    def execute_fields(  # type: ignore[override]
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        # strawberry always passes a manager; it wraps resolvers only when an extension has `resolve`
        if self.middleware_manager is not None and self.middleware_manager.middlewares:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        plans = plans_of(parent_type)
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        pending: list[str] = []
        try:
            for response_name, details in grouped_field_set.items():
                plan = plans.get(details[0].node.name.value)
                if plan is None:
                    field_path = Path(path, response_name, parent_type.name)
                    result = self.execute_field(parent_type, source_value, details, field_path, position_context)
                    if result is Undefined:
                        continue
                elif plan.leaf:
                    result = self._leaf(plan, parent_type, source_value, details, path, response_name)
                else:
                    result = self._object(
                        plan, parent_type, source_value, details, path, response_name, position_context
                    )
                results[response_name] = result
                if is_awaitable(result):
                    pending.append(response_name)
        except Exception:
            if pending:
                self.settle_in_background([results[name] for name in pending])
            raise
        if not pending:
            return results

        async def gathered() -> dict[str, Any]:
            if len(pending) == 1:
                results[pending[0]] = await results[pending[0]]
            else:
                values = await gather_with_cancel(*(results[name] for name in pending))
                results.update(zip(pending, values, strict=True))
            return results

        return gathered()

    def _leaf(
        self, plan: _Plan, parent_type: GraphQLObjectType, source: Any, details: Any, path: Path | None, name: str
    ) -> Any:
        try:
            value = _value_of(plan, parent_type, source, details)
            if value is None:
                return None
            if plan.enum_names is not None and isinstance(value, Enum):
                found = plan.enum_names.get(value)
                if found is not None:
                    return found
            return self.complete_leaf_value(plan.named, value)
        except Exception as error:
            self.handle_field_error(error, plan.return_type, details, Path(path, name, parent_type.name))
            return None

    def _object(
        self,
        plan: _Plan,
        parent_type: GraphQLObjectType,
        source: Any,
        details: Any,
        path: Path | None,
        name: str,
        position_context: Any,
    ) -> Any:
        field_path = Path(path, name, parent_type.name)
        try:
            value = _value_of(plan, parent_type, source, details)
            if value is None:
                return None
            completed = self.collect_and_execute_subfields(plan.named, details, field_path, value, position_context)
            if self.is_awaitable(completed):
                return self._await_object(completed, plan, details, field_path)
            return completed
        except Exception as error:
            self.handle_field_error(error, plan.return_type, details, field_path)
            return None

    async def _await_object(self, completed: Awaitable[Any], plan: _Plan, details: Any, field_path: Path) -> Any:
        try:
            return await completed
        except Exception as error:
            self.handle_field_error(error, plan.return_type, details, field_path)
            return None


def _value_of(plan: _Plan, parent_type: GraphQLObjectType, source: Any, details: Any) -> Any:
    """The field's value, None for a null (raising where the field is non-null), an error raised."""
    value = getattr(source, plan.attribute) if plan.attribute else source
    if value is None or value is Undefined:
        return _null(plan, parent_type, details)
    if isinstance(value, Exception):
        raise value
    return value


def _null(plan: _Plan, parent_type: GraphQLObjectType, details: Any) -> None:
    if plan.non_null:  # the same message graphql-core gives
        raise TypeError(f"Cannot return null for non-nullable field {parent_type.name}.{details[0].node.name.value}.")
    return None
