"""The operators' security console: apps, their certificates' lifecycle, expiry warnings, usage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bff.settings import Settings
from clients.reference import GraphQLClient, GraphQLError
from clients.signing import RequestSigner
from datasources.crypto import certificates
from datasources.store.models import Notification
from resolvers import apps
from tests.conftest import LiveServer
from tests.factories import Hospital

REGISTER = """
mutation ($input: RegisterAppInput!) {
  registerApp(input: $input) {
    __typename ... on AppRegistered { app { appId signatureAlgorithm } } ... on UserError { code message }
    ... on InvalidInputError { field }
  }
}"""
ISSUE = """
mutation ($input: IssueAppCertificateInput!) {
  issueAppCertificate(input: $input) {
    __typename
    ... on AppCertificateIssued { privateKeyPem certificate { serial status notAfter certificatePem algorithm keyBits } }
    ... on UserError { code message }
  }
}"""
RENEW = """
mutation ($serial: String!) {
  renewAppCertificate(input: {serial: $serial}) {
    __typename ... on AppCertificateIssued { privateKeyPem certificate { serial } } ... on UserError { code message }
  }
}"""
REVOKE = """
mutation ($serial: String!) {
  revokeAppCertificate(input: {serial: $serial, reason: "device lost"}) {
    __typename ... on AppCertificateRevoked { certificate { status revocationReason } } ... on UserError { code }
  }
}"""
CONSOLE = """
query ($days: Int) {
  security {
    apps { appId certificates { serial status renewedBySerial requestCount lastUsedAt } }
    certificates(expiringWithinDays: $days) { serial appId }
    managedKeys { kid purpose state algorithm }
  }
}"""


async def test_an_operator_registers_issues_renews_and_revokes(server: LiveServer) -> None:
    ops = await Hospital(server.deps.db, server.deps.clock).operator(server.url, "security-ops", ["security.manage"])
    app = {"appId": "kiosk-east", "name": "东院自助机", "kind": "DEVICE", "signatureAlgorithm": "SM2-SM3"}
    registered = (await ops.execute(REGISTER, {"input": app}))["registerApp"]
    assert registered == {
        "__typename": "AppRegistered",
        "app": {"appId": "kiosk-east", "signatureAlgorithm": "SM2-SM3"},
    }
    again = (await ops.execute(REGISTER, {"input": app}))["registerApp"]
    assert again["__typename"] == "NotAllowedError" and "already registered" in again["message"]
    bad = (await ops.execute(REGISTER, {"input": {**app, "appId": "Kiosk East"}}))["registerApp"]
    assert (bad["__typename"], bad["field"]) == ("InvalidInputError", "appId")

    issued = (await ops.execute(ISSUE, {"input": {"appId": "kiosk-east", "validDays": 10}}))["issueAppCertificate"]
    cert = issued["certificate"]
    assert cert["status"] == "ACTIVE" and cert["algorithm"] == "SM2-SM3"
    assert certificates.parse(cert["certificatePem"]).app_id == "kiosk-east"
    assert "PRIVATE KEY" in issued["privateKeyPem"]

    # The handed-over key signs; the gateway (development mode) verifies signed requests all the same.
    signer = RequestSigner.from_pem("kiosk-east", cert["serial"], issued["privateKeyPem"])
    kiosk = GraphQLClient(server.url, signer=signer)
    assert (await kiosk.execute("{ campuses { name } }")) == {"campuses": []}
    await server.app.state.gateway_state.verifier.usage.flush(server.deps.db)

    renewed = (await ops.execute(RENEW, {"serial": cert["serial"]}))["renewAppCertificate"]
    assert renewed["__typename"] == "AppCertificateIssued" and renewed["certificate"]["serial"] != cert["serial"]
    console = (await ops.execute(CONSOLE, {"days": 30}))["security"]
    [kiosk_app] = [a for a in console["apps"] if a["appId"] == "kiosk-east"]
    old = next(c for c in kiosk_app["certificates"] if c["serial"] == cert["serial"])
    assert old["renewedBySerial"] == renewed["certificate"]["serial"] and old["status"] == "ACTIVE"
    assert old["requestCount"] == 1 and old["lastUsedAt"]
    assert [c["serial"] for c in console["certificates"]] == [cert["serial"]]  # 10 days: due; the renewal is not
    assert {"purpose": "FIELD", "state": "ACTIVE"}.items() <= next(
        k for k in console["managedKeys"] if k["purpose"] == "FIELD"
    ).items()

    revoked = (await ops.execute(REVOKE, {"serial": cert["serial"]}))["revokeAppCertificate"]
    assert revoked["certificate"] == {"status": "REVOKED", "revocationReason": "device lost"}
    with pytest.raises(GraphQLError) as refused:
        await kiosk.execute("{ campuses { name } }")
    assert refused.value.errors[0]["extensions"]["code"] == "CERT_REVOKED"
    staff_actions = [(e.actor_role, e.action, e.target_id) for e in await server.deps.audit.read(server.deps.db)]
    assert [x for x in staff_actions if x[1].startswith("app.")] == [
        ("OPERATOR", "app.registered", "kiosk-east"),
        ("OPERATOR", "app.certificate_issued", "kiosk-east"),
        ("OPERATOR", "app.certificate_issued", "kiosk-east"),
        ("OPERATOR", "app.certificate_renewed", "kiosk-east"),
        ("OPERATOR", "app.certificate_revoked", "kiosk-east"),
    ]


async def test_an_administrator_sets_up_the_first_app_from_the_command_line(
    server: LiveServer, settings: Settings, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "DATABASE_SCHEMA": settings.database_schema or "",
        "MASTER_KEY": settings.master_key or "",
        "DATA_DIR": str(tmp_path),
    }
    if not settings.database_schema:
        del env["DATABASE_SCHEMA"]

    def cli(*args: str) -> str:
        done = subprocess.run(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "bff.apps", *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "registered his-west" in cli("register", "his-west", "--name", "HIS", "--kind", "IN_HOUSE")
    key_file = tmp_path / "his-west.key.pem"
    printed = cli("issue", "his-west", "--key-out", str(key_file))
    assert oct(key_file.stat().st_mode & 0o777) == "0o600" and "PRIVATE KEY" not in printed
    serial = next(line.split()[1] for line in printed.splitlines() if line.startswith("certificate "))
    await server.app.state.gateway_state.verifier.registry.refresh()  # within 30 s by itself, at once with Redis
    his = GraphQLClient(server.url, signer=RequestSigner.from_pem("his-west", serial, key_file.read_bytes()))
    assert await his.execute("{ campuses { name } }") == {"campuses": []}
    actions = [(e.actor_role, e.action) for e in await server.deps.audit.read(server.deps.db)]
    assert ("ADMIN_CLI", "app.certificate_issued") in actions


async def test_only_operators_granted_security_manage_reach_the_console(server: LiveServer) -> None:
    hospital = Hospital(server.deps.db, server.deps.clock)
    patient, _token, _ = await hospital.login(server.url)
    for client in (patient, await hospital.operator(server.url, "patients-ops", ["patients.read"])):
        with pytest.raises(GraphQLError) as refused:
            await client.execute(CONSOLE)
        assert refused.value.codes == ["FORBIDDEN"]
        answer = await client.post(
            REGISTER, {"input": {"appId": "x-app", "name": "x", "kind": "PARTNER", "signatureAlgorithm": "RSA-SHA256"}}
        )
        assert answer.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await apps.apps(server.deps.db) == []


async def test_operators_are_warned_once_of_certificates_close_to_expiry_and_metrics_show_them(
    server: LiveServer,
) -> None:
    ops = await Hospital(server.deps.db, server.deps.clock).operator(server.url, "security-ops", ["security.manage"])
    deps = server.deps
    await apps.register_app(
        deps.db, deps.security_clock, app_id="his-east", name="HIS", kind="IN_HOUSE", algorithm="RSA-SHA256"
    )
    soon = await apps.issue_certificate(
        deps.db, deps.cipher.keyring, deps.security_clock, deps.certificates, app_id="his-east", valid_days=7
    )
    await apps.issue_certificate(
        deps.db, deps.cipher.keyring, deps.security_clock, deps.certificates, app_id="his-east", valid_days=200
    )
    assert await apps.warn_expiring(deps.db, deps.cipher.keyring, deps.security_clock, deps.certificates) == 1
    assert await apps.warn_expiring(deps.db, deps.cipher.keyring, deps.security_clock, deps.certificates) == 0
    me = (await ops.execute("{ me { account { id } unreadNotificationCount } }"))["me"]
    assert me["unreadNotificationCount"] == 1
    async with deps.db.reading() as s:
        [note] = (
            await s.execute(select(Notification).where(Notification.account_id == int(me["account"]["id"])))
        ).scalars()
    assert note.kind == "SECURITY" and soon.certificate.serial[:12] in note.body and "his-east" in note.body

    await deps.invalidate(apps.APPS_INVALIDATION)
    async with httpx.AsyncClient() as http:
        scraped = (await http.get(server.url + "/metrics")).text
    line = next(x for x in scraped.splitlines() if soon.certificate.serial in x)
    assert line.startswith('bff_certificate_expiry_timestamp_seconds{app_id="his-east"')
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(soon.certificate.not_after.timestamp())
