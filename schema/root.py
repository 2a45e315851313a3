"""The one schema: roots assembled from the domain modules."""

from __future__ import annotations

import datetime as dt

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from datasources.clock import SHANGHAI
from schema.apps import AppsMutation, AppsQuery
from schema.catalog import CatalogQuery
from schema.common import Ctx
from schema.documents import ValidationByQueryText, ValidationResults
from schema.execution import LeanExecutionContext
from schema.identity import IdentityMutation
from schema.kiosk import KioskMutation, KioskQuery
from schema.patients import PatientsMutation, PatientsQuery
from schema.payments import PaymentsMutation
from schema.reconciliation import ReconciliationMutation, ReconciliationQuery
from schema.registration import RegistrationMutation, RegistrationSubscription
from schema.viewer import Me


@strawberry.type
class Query(CatalogQuery, AppsQuery, PatientsQuery, ReconciliationQuery, KioskQuery):
    @strawberry.field(description="The caller: patients, registrations, sessions, by role.")
    def me(self, info: Ctx) -> Me:
        return Me()


@strawberry.type
class Mutation(
    IdentityMutation, PatientsMutation, RegistrationMutation, PaymentsMutation, AppsMutation, ReconciliationMutation,
    KioskMutation,
):
    pass


@strawberry.type
class Subscription(RegistrationSubscription):
    pass


def _serialize_instant(value: dt.datetime) -> str:
    """Instants go out in the hospital's time zone, with the offset: 2026-11-23T08:00:00+08:00."""
    return value.astimezone(SHANGHAI).isoformat()


DateTime = strawberry.scalar(
    name="DateTime",
    description="An instant, ISO 8601 with offset; sent in Asia/Shanghai time.",
    serialize=_serialize_instant,
    parse_value=dt.datetime.fromisoformat,
)


class BFFSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """Expected errors (validation, permissions, business rules) are not logged as failures;
        the unexpected ones are logged once, with the request id, by ``bff.errors.ErrorPolicy``."""


def build_schema(extra_extensions: list | None = None) -> strawberry.Schema:  # type: ignore[type-arg]
    # The limiters' validation rules are classes made when a limiter is constructed. Made once
    # here, they are the same on every request, so the validation cache (keyed by text and rules)
    # hits; a limiter built per request would make new classes each time and the cache would miss.
    depth_rules = QueryDepthLimiter(max_depth=12).validation_rules
    alias_rules = MaxAliasesLimiter(max_alias_count=30).validation_rules
    limit_rules = [*depth_rules, *alias_rules]
    validations = ValidationResults(maxsize=512)
    return BFFSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        execution_context_class=LeanExecutionContext,
        config=StrawberryConfig(auto_camel_case=True, scalar_map={dt.datetime: DateTime}),
        extensions=[
            lambda: ParserCache(maxsize=512),
            lambda: ValidationByQueryText(validations),
            lambda: AddValidationRules(limit_rules),  # one extension for both: each costs hooks per request
            lambda: MaxTokensLimiter(max_token_count=4000),
            *(extra_extensions or []),
        ],
    )
