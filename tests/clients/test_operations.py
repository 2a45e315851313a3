"""The channel profiles and the operation documents the front ends send.

Every document must run against the schema the BFF serves today, within its limits, and handle
every answer a payload can give; then the documents are driven in order against the real app, the
way each front end uses them.
"""

from __future__ import annotations

import asyncio
import fnmatch
import tomllib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLCompositeType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    is_abstract_type,
    is_composite_type,
    parse,
    specified_rules,
    validate,
)
from strawberry.extensions import AddValidationRules, MaxTokensLimiter

from clients.profiles import ChannelProfile, load_profiles, operation
from clients.reference import GraphQLClient, GraphQLError
from datasources.clock import local_date
from resolvers import identity
from schema.root import build_schema
from tests.conftest import LiveServer
from tests.e2e.test_second_factor import code_at
from tests.factories import AT_CAMPUS, Hospital, complete_patient

ROOT = Path(__file__).resolve().parents[2]
PROFILES = load_profiles()
SCHEMA = build_schema()
GRAPHQL: GraphQLSchema = SCHEMA._schema
ROLES = {identity.PATIENT, identity.DOCTOR, identity.PHARMACIST, identity.OPERATOR}
PRODUCT_CHANNELS = {"wechat", "alipay", "elderly", "doctor_h5", "pharmacist_workbench", "ops_dashboard"}
PATIENT_CHANNELS = sorted(c for c, p in PROFILES.items() if identity.PATIENT in p.roles)
ALL_OPERATIONS = [(c, name) for c, p in sorted(PROFILES.items()) for name in p.operations]


def _limits() -> tuple[list[Any], int | None]:
    """The validation rules and token limit the served schema adds (depth, aliases, tokens)."""
    rules: list[Any] = []
    max_tokens: int | None = None
    for factory in SCHEMA.extensions:
        extension = factory()  # type: ignore[operator]
        if isinstance(extension, AddValidationRules):
            rules.extend(extension.validation_rules)
        if isinstance(extension, MaxTokensLimiter):
            max_tokens = extension.max_token_count
    return rules, max_tokens


EXTRA_RULES, MAX_TOKENS = _limits()


def _document_files(profile: ChannelProfile) -> set[str]:
    return {p.name for p in profile.directory.glob("*.graphql")} - set(profile.fragments)


def _fragment_names(profile: ChannelProfile) -> set[str]:
    return {
        d.name.value
        for file in profile.fragments
        for d in parse(profile.file_path(file).read_text(encoding="utf-8")).definitions
        if isinstance(d, FragmentDefinitionNode)
    }


# --- what a document selects, as the client will receive it -----------------------------------


class Shape:
    """Walks an operation the way graphql-core collects fields, for each possible runtime type."""

    def __init__(self, text: str) -> None:
        document = parse(text)
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
        self.root = GRAPHQL.get_root_type(self.operation.operation)
        assert self.root is not None

    def _applies(self, condition: str | None, runtime: GraphQLObjectType) -> bool:
        if condition is None or condition == runtime.name:
            return True
        condition_type = GRAPHQL.get_type(condition)
        return is_abstract_type(condition_type) and GRAPHQL.is_sub_type(condition_type, runtime)  # type: ignore[arg-type]

    def fields(self, selections: list[SelectionSetNode], runtime: GraphQLObjectType) -> dict[str, list[FieldNode]]:
        found: dict[str, list[FieldNode]] = {}
        for selection_set in selections:
            for selection in selection_set.selections:
                if isinstance(selection, FieldNode):
                    found.setdefault((selection.alias or selection.name).value, []).append(selection)
                    continue
                if isinstance(selection, InlineFragmentNode):
                    condition = selection.type_condition.name.value if selection.type_condition else None
                    inner = selection.selection_set
                else:
                    assert isinstance(selection, FragmentSpreadNode)
                    fragment = self.fragments[selection.name.value]
                    condition, inner = fragment.type_condition.name.value, fragment.selection_set
                if self._applies(condition, runtime):
                    for key, nodes in self.fields([inner], runtime).items():
                        found.setdefault(key, []).extend(nodes)
        return found

    def problems(self) -> Iterator[str]:
        """Union fields whose members are not all handled, and errors shown without their fields."""
        yield from self._walk([self.operation.selection_set], self.root, self.operation.name.value)  # type: ignore[arg-type,union-attr]

    def leaves(self) -> set[str]:
        return set(self._leaves([self.operation.selection_set], self.root, ""))  # type: ignore[arg-type]

    def _runtimes(self, parent: GraphQLCompositeType) -> list[GraphQLObjectType]:
        if isinstance(parent, GraphQLObjectType):
            return [parent]
        return list(GRAPHQL.get_possible_types(parent))  # type: ignore[arg-type]

    def _walk(self, selections: list[SelectionSetNode], parent: GraphQLCompositeType, path: str) -> Iterator[str]:
        user_error = GRAPHQL.get_type("UserError")
        for runtime in self._runtimes(parent):
            fields = self.fields(selections, runtime)
            if isinstance(parent, GraphQLUnionType):
                if "__typename" not in fields:
                    yield f"{path}: select __typename to tell {parent.name}'s members apart"
                if not set(fields) - {"__typename"}:
                    yield f"{path}: {runtime.name} is not handled"
                if user_error in runtime.interfaces:
                    missing = set(runtime.fields) - set(fields)
                    if missing:
                        yield f"{path}: {runtime.name} is shown without {sorted(missing)}"
            for key, nodes in fields.items():
                if nodes[0].name.value.startswith("__"):
                    continue
                child = get_named_type(runtime.fields[nodes[0].name.value].type)
                if is_composite_type(child):
                    inner = [n.selection_set for n in nodes if n.selection_set]
                    yield from self._walk(inner, child, f"{path}.{key}")  # type: ignore[arg-type]

    def _leaves(self, selections: list[SelectionSetNode], parent: GraphQLCompositeType, path: str) -> Iterator[str]:
        for runtime in self._runtimes(parent):
            prefix = f"{path}<{runtime.name}>" if runtime is not parent else path
            for key, nodes in self.fields(selections, runtime).items():
                if nodes[0].name.value.startswith("__"):
                    continue
                child = get_named_type(runtime.fields[nodes[0].name.value].type)
                if is_composite_type(child):
                    inner = [n.selection_set for n in nodes if n.selection_set]
                    yield from self._leaves(inner, child, f"{prefix}.{key}")  # type: ignore[arg-type]
                else:
                    yield f"{prefix}.{key}"


# --- profiles ------------------------------------------------------------------------------------


def test_each_channel_of_the_product_has_a_profile() -> None:
    assert set(PROFILES) == PRODUCT_CHANNELS
    for name, profile in PROFILES.items():
        assert profile.channel == name == profile.directory.name
        assert profile.display_name and profile.host


def test_profiles_serve_known_roles_only() -> None:
    for profile in PROFILES.values():
        assert profile.roles, profile.channel
        assert set(profile.roles) <= ROLES, profile.channel
    assert {r for p in PROFILES.values() for r in p.roles} >= {identity.PATIENT, identity.DOCTOR, identity.OPERATOR}


def test_patients_log_in_through_their_mini_program_and_staff_with_a_password() -> None:
    mutations = GRAPHQL.mutation_type.fields  # type: ignore[union-attr]
    for profile in PROFILES.values():
        assert profile.login.mutation in mutations, profile.channel
        assert get_named_type(mutations[profile.login.mutation].type).name == "LoginPayload"
        assert profile.login.operation in profile.operations, profile.channel
        called = Shape(operation(profile.channel, profile.login.operation)).operation
        assert called.operation == OperationType.MUTATION
        assert [f.name.value for f in called.selection_set.selections] == [profile.login.mutation]  # type: ignore[attr-defined]
        if identity.PATIENT in profile.roles:
            assert profile.login.mutation in {"loginWithWechat", "loginWithAlipay"}, profile.channel
        else:
            assert profile.login.mutation == "loginWithPassword", profile.channel
    assert PROFILES["wechat"].login.session_channel == "WECHAT"
    assert PROFILES["alipay"].login.session_channel == "ALIPAY"


def test_every_channel_subscribes_over_graphql_transport_ws() -> None:
    for profile in PROFILES.values():
        assert profile.subscription_protocol == "graphql-transport-ws", profile.channel
    for channel in PATIENT_CHANNELS:
        assert "QueueUpdates" in PROFILES[channel].operations


def test_profiles_list_exactly_the_documents_in_their_folder() -> None:
    for profile in PROFILES.values():
        assert len(set(profile.operations)) == len(profile.operations), f"{profile.channel} lists one twice"
        listed = {f"{name}.graphql" for name in profile.operations}
        assert _document_files(profile) <= listed, f"{profile.channel} has documents it does not list"
        for name in profile.operations:
            assert profile.document_path(name).is_file(), f"{profile.channel}: no document {name}"
        if profile.borrows_from is None:
            assert _document_files(profile) == listed, profile.channel
        for file in profile.fragments:
            assert profile.file_path(file).is_file(), f"{profile.channel}: {file}"


def test_alipay_sends_the_wechat_documents_except_its_own_login() -> None:
    alipay = PROFILES["alipay"]
    assert _document_files(alipay) == {"LoginWithAlipay.graphql"}
    assert operation("alipay", "BookAppointment") == operation("wechat", "BookAppointment")


def test_an_operation_a_channel_does_not_list_is_refused() -> None:
    with pytest.raises(KeyError):
        operation("elderly", "RemovePatient")
    with pytest.raises(KeyError):
        operation("kiosk", "HomePage")


def test_elderly_mode_is_the_wechat_front_end_made_smaller_and_simpler() -> None:
    elderly, wechat = PROFILES["elderly"], PROFILES["wechat"]
    assert (elderly.login.mutation, elderly.login.provider) == (wechat.login.mutation, wechat.login.provider)
    assert elderly.login.session_channel == "ELDERLY"  # its own front end on the same WeChat account
    assert elderly.presentation is not None and elderly.presentation.mode == "elderly"
    assert elderly.presentation.suggest_from_age == 60
    assert elderly.presentation.font_scale > 1
    assert set(elderly.operations) < set(wechat.operations)
    shown = {name: Shape(operation("elderly", name)).leaves() for name in elderly.operations}
    full = {name: Shape(operation("wechat", name)).leaves() for name in elderly.operations}
    for name in elderly.operations:
        assert len(shown[name]) <= len(full[name]), name
    assert sum(map(len, shown.values())) < sum(map(len, full.values()))
    assert len(shown["HomePage"]) < len(full["HomePage"])


def test_profiles_and_documents_ship_with_the_package() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"
    ]["clients"]
    clients = ROOT / "clients"
    shipped = [p for p in clients.glob("*/*") if p.suffix in (".toml", ".graphql")]
    assert shipped
    for path in shipped:
        relative = path.relative_to(clients).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


# --- documents -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("channel", "name"), ALL_OPERATIONS)
def test_each_file_holds_one_operation_named_after_it(channel: str, name: str) -> None:
    definitions = parse(PROFILES[channel].document_path(name).read_text(encoding="utf-8")).definitions
    assert len(definitions) == 1
    assert isinstance(definitions[0], OperationDefinitionNode)
    assert definitions[0].name is not None and definitions[0].name.value == name


@pytest.mark.parametrize(("channel", "name"), ALL_OPERATIONS)
def test_each_operation_validates_against_the_served_schema_within_its_limits(channel: str, name: str) -> None:
    document = parse(operation(channel, name), max_tokens=MAX_TOKENS)
    errors = validate(GRAPHQL, document, [*specified_rules, *EXTRA_RULES])
    assert not errors, [e.message for e in errors]


@pytest.mark.parametrize(("channel", "name"), ALL_OPERATIONS)
def test_each_payload_answer_is_handled_and_errors_show_what_the_user_needs(channel: str, name: str) -> None:
    assert list(Shape(operation(channel, name)).problems()) == []


def test_the_union_check_catches_an_unhandled_member_and_a_bare_error() -> None:
    careless = """
    mutation Careless($registrationId: ID!) {
      checkIn(input: {registrationId: $registrationId, location: {latitude: 0, longitude: 0}}) {
        __typename
        ... on CheckedIn { notice }
        ... on OutsideGeofenceError { message code distanceMeters }
        ... on NotFoundError { message code }
      }
    }"""
    problems = list(Shape(careless).problems())
    assert "Careless.checkIn: CreditDefaultedError is not handled" in problems
    assert "Careless.checkIn: OutsideGeofenceError is shown without ['radiusMeters']" in problems
    assert not any("NotFoundError" in p for p in problems)


def test_every_fragment_of_a_channel_is_used_by_one_of_its_operations() -> None:
    for profile in PROFILES.values():
        used: set[str] = set()
        for name in profile.operations:
            text = operation(profile.channel, name)
            used |= {d.name.value for d in parse(text).definitions if isinstance(d, FragmentDefinitionNode)}
        assert _fragment_names(profile) == used, profile.channel


# --- the documents against the real app ----------------------------------------------------------


async def _patient_logs_in(server: LiveServer, hospital: Hospital, channel: str) -> tuple[GraphQLClient, Any]:
    profile = PROFILES[channel]
    login = operation(channel, profile.login.operation)
    (variable,) = Shape(login).operation.variable_definitions or ()
    code = await hospital.channels.issue_code(profile.login.provider, f"{channel}-user")
    anonymous = server.client()
    try:
        answer = (await anonymous.execute(login, {variable.variable.name.value: code}))[profile.login.mutation]
    finally:
        await anonymous.aclose()
    assert answer["__typename"] == "LoginSuccess", answer
    assert answer["account"]["role"] == identity.PATIENT
    return server.client(answer["token"]), answer


@pytest.mark.parametrize("channel", PATIENT_CHANNELS)
async def test_a_patient_books_and_cancels_an_appointment_with_the_channel_documents(
    server: LiveServer, channel: str
) -> None:
    def send(name: str, variables: dict[str, Any] | None = None) -> Any:
        return client.execute(operation(channel, name), variables)

    hospital = await Hospital(server.deps.db, server.deps.clock).build()
    tomorrow = local_date(server.deps.clock.now()) + timedelta(days=1)
    schedule_id, slot_ids = await hospital.session(day=tomorrow, capacity=3)
    client, login = await _patient_logs_in(server, hospital, channel)
    try:
        assert login["newAccount"] is True
        home = (await send("HomePage"))["me"]
        assert home["patients"] == [] and home["registrations"]["nodes"] == []
        assert home["unreadNotificationCount"] == 0

        person = complete_patient("李雷")
        added = (await send("AddPatient", {"input": person}))["addPatient"]
        assert added["__typename"] == "PatientSaved", added
        patient = added["patient"]
        assert patient["name"] == "李*"
        assert patient["isComplete"] is True and patient["hasHospitalRecord"] is False
        await hospital.credit.put_record(
            name="李雷", document_number=person["documentNumber"], arrears_here_fen=0, arrears_elsewhere_fen=0
        )

        bound = (await send("CreateHospitalRecord", {"patientId": patient["id"]}))["createHospitalRecord"]
        assert bound["__typename"] == "MedicalCardBound", bound
        assert bound["patient"]["hasHospitalRecord"] is True
        assert bound["card"]["cardNo"].startswith("*") and bound["card"]["cardNo"][-4:].isdigit()

        sessions = (await send("Schedules", {"dateFrom": tomorrow.isoformat(), "departmentId": hospital.department_id}))
        (session,) = sessions["schedules"]
        assert session["id"] == schedule_id and session["doctor"]["name"] == "王建国"
        assert [s["id"] for s in session["slots"]] == slot_ids
        first = session["slots"][0]
        assert first["remaining"] == 3

        booked = (await send("BookAppointment", {"patientId": patient["id"], "slotId": first["id"]}))["bookAppointment"]
        assert booked["__typename"] == "AppointmentBooked", booked
        registration = booked["registration"]
        assert registration["status"] == "BOOKED" and registration["startsAt"] == first["startsAt"]

        upcoming = (await send("HomePage"))["me"]["registrations"]["nodes"]
        assert [r["id"] for r in upcoming] == [registration["id"]]
        shown = upcoming[0]
        assert shown["kind"] == "APPOINTMENT" and shown["status"] == "BOOKED"
        assert shown["patient"]["name"] == "李*"
        assert shown["doctor"]["name"] == "王建国" and shown["doctor"]["title"] == "主任医师"
        assert shown["department"]["name"] == "心血管内科"
        assert shown["campus"]["name"] == "桃源院区"
        assert shown["queuePosition"] is None, "not checked in yet"
        slots = (await send("Schedules", {"dateFrom": tomorrow.isoformat(), "doctorId": hospital.doctor_id}))
        assert slots["schedules"][0]["slots"][0]["remaining"] == 2

        cancelled = (await send("CancelRegistration", {"registrationId": registration["id"]}))["cancelRegistration"]
        assert cancelled["__typename"] == "RegistrationCancelled", cancelled
        assert cancelled["registration"]["status"] == "CANCELLED"

        assert (await send("HomePage"))["me"]["registrations"]["nodes"] == []
        history = (await send("Registrations", {"filter": {"statuses": ["CANCELLED"]}}))["me"]["registrations"]
        assert [r["id"] for r in history["nodes"]] == [registration["id"]]
        slots = (await send("Schedules", {"dateFrom": tomorrow.isoformat(), "doctorId": hospital.doctor_id}))
        assert slots["schedules"][0]["slots"][0]["remaining"] == 3

        assert (await send("Logout"))["logout"] == {"ok": True}
        with pytest.raises(GraphQLError) as refused:
            await send("HomePage")
        assert "UNAUTHENTICATED" in refused.value.codes
    finally:
        await client.aclose()


async def test_a_defaulter_sees_the_arrears_and_the_top_up_when_booking(server: LiveServer) -> None:
    hospital = await Hospital(server.deps.db, server.deps.clock).build()
    tomorrow = local_date(server.deps.clock.now()) + timedelta(days=1)
    _, slot_ids = await hospital.session(day=tomorrow)
    defaulter = await hospital.patient(server.url, name="王五", credit="DEFAULTED_HERE", arrears_fen=23850)
    try:
        answer = (
            await defaulter.client.execute(
                operation("elderly", "BookAppointment"), {"patientId": defaulter.patient_id, "slotId": slot_ids[0]}
            )
        )["bookAppointment"]
        assert answer["__typename"] == "CreditDefaultedError"
        assert answer["arrears"] == {"yuan": "238.50"}
        assert answer["topUp"]["amount"] == {"yuan": "238.50"} and answer["topUp"]["route"]
        assert answer["appealUrl"].startswith("http")
    finally:
        await defaulter.client.aclose()


async def test_the_doctor_calls_patients_and_the_waiting_patient_sees_the_queue_move(server: LiveServer) -> None:
    hospital = await Hospital(server.deps.db, server.deps.clock).build()
    schedule_id, _ = await hospital.session()  # this morning; it is 09:10
    await identity.create_staff(
        server.deps.db, server.deps.clock, role=identity.DOCTOR, username="dr.wang", password="wang-2026-secret",
        display_name="王建国", his_staff_id=hospital.doctor_id,
    )
    first, second = await hospital.patient(server.url, name="甲"), await hospital.patient(server.url, name="乙")
    doctor = server.client()
    try:
        (today,) = (await first.client.execute(operation("wechat", "SameDaySchedules")))["sameDaySchedules"]
        open_slot = next(s for s in today["slots"] if s["remaining"] > 0)
        registrations = []
        for handle in (first, second):
            answer = (
                await handle.client.execute(
                    operation("wechat", "RegisterSameDay"),
                    {"patientId": handle.patient_id, "slotId": open_slot["id"], "location": AT_CAMPUS},
                )
            )["registerSameDay"]
            assert answer["__typename"] == "CheckedIn", answer
            registrations.append(answer["registration"])
        assert [r["queueNumber"] for r in registrations] == [1, 2]

        login = (
            await doctor.execute(
                operation("doctor_h5", "LoginWithPassword"), {"username": "dr.wang", "password": "wang-2026-secret"}
            )
        )["loginWithPassword"]
        assert login["__typename"] == "LoginSuccess" and login["account"]["role"] == identity.DOCTOR
        doctor.token = login["token"]
        (session,) = (await doctor.execute(operation("doctor_h5", "MySessions")))["me"]["sessions"]
        assert session["id"] == schedule_id
        queue = (await doctor.execute(operation("doctor_h5", "SessionQueue"), {"scheduleId": schedule_id}))
        assert queue["me"]["queue"]["waiting"] == [1, 2]

        updates = operation("wechat", "QueueUpdates")
        async with second.client.subscribe(updates, {"registrationId": registrations[1]["id"]}) as positions:
            now = await asyncio.wait_for(anext(positions), 10)
            assert (now["queueUpdates"]["state"], now["queueUpdates"]["ahead"]) == ("WAITING", 1)

            called = (await doctor.execute(operation("doctor_h5", "CallNextPatient"), {"scheduleId": schedule_id}))
            assert called["callNextPatient"]["queueNumber"] == 1
            now = await asyncio.wait_for(anext(positions), 10)
            assert now["queueUpdates"]["ahead"] == 0 and now["queueUpdates"]["calledNumber"] == 1

            await doctor.execute(operation("doctor_h5", "CallNextPatient"), {"scheduleId": schedule_id})
            now = await asyncio.wait_for(anext(positions), 10)
            assert now["queueUpdates"]["state"] == "CALLED"

        assert (await doctor.execute(operation("doctor_h5", "Logout")))["logout"] == {"ok": True}
    finally:
        for c in (first.client, second.client, doctor):
            await c.aclose()


async def test_an_operator_signs_in_to_the_dashboard_and_sees_their_permissions(server: LiveServer) -> None:
    await identity.create_staff(
        server.deps.db, server.deps.clock, role=identity.OPERATOR, username="ops.li", password="ops-li-2026-secret",
        display_name="运营 李", operator_roles={"front-desk-lead": ["registrations.read", "patients.read"]},
    )
    dashboard = server.client()
    try:
        login = (
            await dashboard.execute(
                operation("ops_dashboard", "LoginWithPassword"), {"username": "ops.li", "password": "ops-li-2026-secret"}
            )
        )["loginWithPassword"]
        assert login["__typename"] == "LoginSuccess", login
        dashboard.token = login["token"]
        me = (await dashboard.execute(operation("ops_dashboard", "Me")))["me"]["account"]
        assert me["role"] == identity.OPERATOR
        assert me["permissions"] == ["patients.read", "registrations.read"]
        assert (await dashboard.execute(operation("ops_dashboard", "Logout")))["logout"] == {"ok": True}
        with pytest.raises(GraphQLError) as refused:
            await dashboard.execute(operation("ops_dashboard", "Me"))
        assert "UNAUTHENTICATED" in refused.value.codes

        dashboard.token = None
        wrong = (
            await dashboard.execute(
                operation("ops_dashboard", "LoginWithPassword"), {"username": "ops.li", "password": "not-it"}
            )
        )["loginWithPassword"]
        assert wrong["__typename"] == "LoginFailedError" and wrong["message"]
    finally:
        await dashboard.aclose()


async def test_an_operator_adds_an_authenticator_app_and_changes_the_password_from_the_dashboard(
    server: LiveServer,
) -> None:
    clock = server.deps.clock
    await identity.create_staff(
        server.deps.db, clock, role=identity.OPERATOR, username="ops.qin", password="Ops-Qin-2026", display_name="秦"
    )
    dashboard = server.client()
    login = operation("ops_dashboard", "LoginWithPassword")
    try:
        first = (await dashboard.execute(login, {"username": "ops.qin", "password": "Ops-Qin-2026"}))
        dashboard.token = first["loginWithPassword"]["token"]
        enrollment = (await dashboard.execute(operation("ops_dashboard", "BeginSecondFactorEnrollment")))
        secret = enrollment["beginSecondFactorEnrollment"]["secret"]
        confirmed = await dashboard.execute(
            operation("ops_dashboard", "ConfirmSecondFactor"), {"code": code_at(secret, clock.now())}
        )
        assert confirmed["confirmSecondFactor"]["__typename"] == "SecondFactorConfirmed"
        changed = await dashboard.execute(
            operation("ops_dashboard", "ChangePassword"), {"current": "Ops-Qin-2026", "new": "Ops-Qin-2027!"}
        )
        assert changed["changePassword"]["__typename"] == "PasswordChanged"

        dashboard.token = None
        asked = (await dashboard.execute(login, {"username": "ops.qin", "password": "Ops-Qin-2027!"}))
        assert asked["loginWithPassword"]["code"] == "SECOND_FACTOR_REQUIRED"
        clock.advance(seconds=30)  # type: ignore[attr-defined]
        variables = {"username": "ops.qin", "password": "Ops-Qin-2027!", "totpCode": code_at(secret, clock.now())}
        assert (await dashboard.execute(login, variables))["loginWithPassword"]["__typename"] == "LoginSuccess"
    finally:
        await dashboard.aclose()
