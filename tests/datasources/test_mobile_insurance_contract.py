"""The mobile insurance payment 2.0 contract, as one suite run against the sandbox in-process and against
``HttpMobileInsurance`` over real HTTP (uvicorn on loopback) to the sandbox served as the platform.

Both give the same splits to the fen and refuse with the same codes. At the end: what only the HTTP
side has (the authorization page, forged and tampered envelopes in both directions, no retries for
money, the circuit breaker).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from datasources.clock import FixedClock
from datasources.crypto.primitives import generate_signing_key, sm4_ecb_encrypt
from datasources.errors import SourceRejected, SourceUnavailable
from datasources.mobile_insurance import contract as c
from datasources.mobile_insurance import wire
from datasources.mobile_insurance.http import HttpMobileInsurance
from datasources.mobile_insurance.sandbox import SandboxMobileInsurance, SandboxMobileInsuranceAdmin
from datasources.mobile_insurance.served import mobile_insurance_sandbox_app
from datasources.store.db import Database
from tests.conftest import LiveServer

IMPLEMENTATIONS = ["sandbox_in_process", "http_to_served_sandbox"]
APP_ID = "0F0822652EB7CB91A644E638FBE9941E"
APP_SECRET = "30BFE2B0C715E516E5EDF21E289DA826"
RETURN_URL = "https://hospital.example/mipay/back?from=mini"
ORG = "H44010600001"
ID_NO = "44010619800101001X"
NAME = "张三"

# Drugs (09) 70 %, examinations (03) 50 %, others 0 %; 10 yuan deductible; the family account on.
RULES = c.SplitRules(
    fund_ratios={"09": Decimal("0.70"), "03": Decimal("0.50")},
    deductible_fen=1000,
    family_account=True,
    auth_ttl_seconds=600,
)


@dataclass(frozen=True)
class Keys:
    hospital: wire.Party
    platform: wire.Party


def make_keys() -> Keys:
    hospital_key, platform_key = generate_signing_key("SM2-SM3"), generate_signing_key("SM2-SM3")
    return Keys(
        wire.Party(APP_ID, APP_SECRET, hospital_key, platform_key.public_key()),  # type: ignore[arg-type]
        wire.Party(APP_ID, APP_SECRET, platform_key, hospital_key.public_key()),  # type: ignore[arg-type]
    )


@dataclass
class Stage:
    mi: c.MobileInsurance
    sandbox: SandboxMobileInsurance
    admin: SandboxMobileInsuranceAdmin
    clock: FixedClock
    live: LiveServer | None
    order_seq: int = 0

    async def authorize(self, id_no: str = ID_NO, name: str = NAME) -> c.Authorization:
        """The patient on the authorization page: served over HTTP, or the sandbox's page action in-process."""
        url = self.mi.authorize_url(RETURN_URL, "st-1")
        if self.live is None:
            location = await self.sandbox.authorize(id_no=id_no, name=name, return_url=RETURN_URL, state="st-1")
        else:
            async with httpx.AsyncClient() as browser:
                shown = await browser.get(url)
                assert shown.status_code == 200 and 'name="idNo"' in shown.text
                submitted = await browser.post(
                    url, data={"returnUrl": RETURN_URL, "state": "st-1", "name": name, "idNo": id_no}
                )
                assert submitted.status_code == 303, submitted.text
                location = submitted.headers["location"]
        assert location.startswith("https://hospital.example/mipay/back?from=mini&")
        query = parse_qs(urlsplit(location).query)
        assert query["state"] == ["st-1"]
        return await self.mi.authorization(query["authCode"][0])

    def upload(
        self, auth: c.Authorization, *items: c.FeeItem, total: int | None = None, use_account: bool = True
    ) -> c.FeeUpload:
        self.order_seq += 1
        items = items or BILL
        return c.FeeUpload(
            pay_auth_no=auth.pay_auth_no,
            org_code=ORG,
            med_org_ord=f"MZ2026{self.order_seq:06d}",
            name=auth.name,
            id_no=auth.id_no,
            total_fen=sum(i.amount_fen for i in items) if total is None else total,
            items=items,
            use_personal_account=use_account,
        )


BILL = (
    c.FeeItem("1", "XA01", "阿莫西林胶囊", "09", 10000),
    c.FeeItem("2", "003", "血常规", "03", 4001),
    c.FeeItem("3", "014", "一次性材料", "14", 999),
)


@pytest.fixture(params=IMPLEMENTATIONS)
async def stage(request: pytest.FixtureRequest, db: Database, clock: FixedClock) -> AsyncIterator[Stage]:
    keys = make_keys()
    admin = SandboxMobileInsuranceAdmin(db)
    await admin.add_insured_person(
        id_no=ID_NO, name=NAME, insurance_area="440100", personal_balance_fen=5000, family_balance_fen=1500
    )
    if request.param == "sandbox_in_process":
        sandbox = SandboxMobileInsurance(db, clock, RULES, page_base_url="http://mipay.invalid")
        yield Stage(sandbox, sandbox, admin, clock, None)
        return
    holder: list[SandboxMobileInsurance] = []
    live = await LiveServer(mobile_insurance_sandbox_app(lambda: holder[0], keys.platform)).start()
    holder.append(SandboxMobileInsurance(db, clock, RULES, page_base_url=live.url))
    client = HttpMobileInsurance(live.url, keys.hospital, clock, timeout=5)
    try:
        yield Stage(client, holder[0], admin, clock, live)
    finally:
        await client.aclose()
        await live.stop()


async def rejected(call: Awaitable[Any]) -> str:
    with pytest.raises(SourceRejected) as caught:
        await call
    return caught.value.code


# The whole flow --------------------------------------------------------------------------------------
async def test_authorize_upload_order_query_refund_moves_balances_exactly(stage: Stage) -> None:
    auth = await stage.authorize()
    assert (auth.name, auth.id_no, auth.insurance_area) == (NAME, ID_NO, "440100")
    assert auth.pay_auth_no.startswith("AUTH")

    uploaded = await stage.mi.upload_fees(stage.upload(auth))
    # fund: 10000×0.70 + ⌊4001×0.50⌋ + 0 − 1000 = 8000; personal 5000 of the 7000 left; family 1500; own 500.
    assert uploaded.order.split == c.Split(15000, 8000, 5000, 1500, 500)
    assert uploaded.order.status == c.UPLOADED and uploaded.pay_token
    assert await stage.admin.balances(ID_NO) == (5000, 1500)  # an upload moves nothing

    placed = await stage.mi.place_order(pay_ord_id=uploaded.order.pay_ord_id, pay_token=uploaded.pay_token)
    assert placed == c.Order(uploaded.order.pay_ord_id, uploaded.order.med_org_ord, c.PAID, uploaded.order.split)
    assert await stage.admin.balances(ID_NO) == (0, 0)
    assert await stage.mi.query(pay_ord_id=placed.pay_ord_id) == placed
    assert await rejected(stage.mi.place_order(pay_ord_id=placed.pay_ord_id, pay_token=uploaded.pay_token)) == (
        c.ALREADY_PAID
    )
    assert await stage.admin.balances(ID_NO) == (0, 0)

    refund = await stage.mi.refund(pay_ord_id=placed.pay_ord_id, refund_sn="RF0001", reason="患者退费")
    assert refund == c.Refund(placed.pay_ord_id, "RF0001", 8000, 5000, 1500)
    assert await stage.admin.balances(ID_NO) == (5000, 1500)
    assert (await stage.mi.query(pay_ord_id=placed.pay_ord_id)).status == c.REFUNDED

    assert await rejected(stage.mi.refund(pay_ord_id=placed.pay_ord_id, refund_sn="RF0002", reason="")) == (
        c.ALREADY_REFUNDED
    )
    assert await stage.admin.balances(ID_NO) == (5000, 1500)


async def test_the_personal_account_is_skipped_when_the_upload_does_not_ask_for_it(stage: Stage) -> None:
    uploaded = await stage.mi.upload_fees(stage.upload(await stage.authorize(), use_account=False))
    assert uploaded.order.split == c.Split(15000, 8000, 0, 0, 7000)


async def test_an_order_whose_shares_exceed_the_balances_now_is_refused_and_moves_nothing(stage: Stage) -> None:
    first = await stage.mi.upload_fees(stage.upload(await stage.authorize()))
    second = await stage.mi.upload_fees(stage.upload(await stage.authorize()))
    assert first.order.split == second.order.split == c.Split(15000, 8000, 5000, 1500, 500)

    await stage.mi.place_order(pay_ord_id=first.order.pay_ord_id, pay_token=first.pay_token)
    code = await rejected(stage.mi.place_order(pay_ord_id=second.order.pay_ord_id, pay_token=second.pay_token))
    assert code == c.INSUFFICIENT_PERSONAL_ACCOUNT
    assert await stage.admin.balances(ID_NO) == (0, 0)
    assert (await stage.mi.query(pay_ord_id=second.order.pay_ord_id)).status == c.UPLOADED

    # With the balances back, a new upload splits by what is there now.
    await stage.mi.refund(pay_ord_id=first.order.pay_ord_id, refund_sn="RF1", reason="")
    await stage.mi.cancel_upload(pay_ord_id=second.order.pay_ord_id, pay_token=second.pay_token, reason="重新上传")
    small = (c.FeeItem("1", "XA01", "阿莫西林胶囊", "09", 2000),)
    third = await stage.mi.upload_fees(stage.upload(await stage.authorize(), *small))
    assert third.order.split == c.Split(2000, 400, 1600, 0, 0)


async def test_an_upload_is_cancelled_before_its_order_and_not_after(stage: Stage) -> None:
    kept = await stage.mi.upload_fees(stage.upload(await stage.authorize()))
    dropped = await stage.mi.upload_fees(stage.upload(await stage.authorize()))

    cancelled = await stage.mi.cancel_upload(
        pay_ord_id=dropped.order.pay_ord_id, pay_token=dropped.pay_token, reason="患者取消"
    )
    assert cancelled.status == c.CANCELLED
    assert (
        await rejected(
            stage.mi.cancel_upload(pay_ord_id=dropped.order.pay_ord_id, pay_token=dropped.pay_token, reason="")
        )
        == c.ALREADY_CANCELLED
    )
    assert (
        await rejected(stage.mi.place_order(pay_ord_id=dropped.order.pay_ord_id, pay_token=dropped.pay_token))
        == c.ALREADY_CANCELLED
    )

    await stage.mi.place_order(pay_ord_id=kept.order.pay_ord_id, pay_token=kept.pay_token)
    assert (
        await rejected(stage.mi.cancel_upload(pay_ord_id=kept.order.pay_ord_id, pay_token=kept.pay_token, reason=""))
        == c.CANCEL_AFTER_ORDER
    )
    assert (await stage.mi.query(pay_ord_id=kept.order.pay_ord_id)).status == c.PAID
    assert await stage.admin.balances(ID_NO) == (0, 0)


async def test_pay_auth_numbers_unknown_used_or_expired_are_refused(stage: Stage) -> None:
    auth = await stage.authorize()
    unknown = c.Authorization("AUTHNOTISSUED", NAME, ID_NO, "440100", 0)
    assert await rejected(stage.mi.upload_fees(stage.upload(unknown))) == c.PAY_AUTH_UNKNOWN
    await stage.mi.upload_fees(stage.upload(auth))
    assert await rejected(stage.mi.upload_fees(stage.upload(auth))) == c.PAY_AUTH_USED

    late = await stage.authorize()
    stage.clock.advance(seconds=RULES.auth_ttl_seconds)
    assert await rejected(stage.mi.upload_fees(stage.upload(late))) == c.PAY_AUTH_EXPIRED
    assert await rejected(stage.mi.authorization("nope")) == c.AUTH_CODE_UNKNOWN


async def test_uploads_that_do_not_add_up_or_repeat_are_refused(stage: Stage) -> None:
    auth = await stage.authorize()
    assert await rejected(stage.mi.upload_fees(stage.upload(auth, total=14999))) == c.AMOUNT_MISMATCH
    first = stage.upload(auth)
    await stage.mi.upload_fees(first)
    again = _with_order(stage.upload(await stage.authorize()), first.med_org_ord)
    assert await rejected(stage.mi.upload_fees(again)) == c.DUPLICATE_ORDER
    other = await stage.authorize()
    stranger = c.FeeUpload(other.pay_auth_no, ORG, "MZ-X", "李四", "440106199001011234", 15000, BILL)
    assert await rejected(stage.mi.upload_fees(stranger)) == c.IDENTITY_MISMATCH


def _with_order(upload: c.FeeUpload, med_org_ord: str) -> c.FeeUpload:
    return c.FeeUpload(
        upload.pay_auth_no,
        upload.org_code,
        med_org_ord,
        upload.name,
        upload.id_no,
        upload.total_fen,
        upload.items,
        upload.use_personal_account,
    )


async def test_unknown_orders_and_wrong_tokens_are_refused(stage: Stage) -> None:
    assert await rejected(stage.mi.query(pay_ord_id="ORDNONE")) == c.ORDER_NOT_FOUND
    assert await rejected(stage.mi.refund(pay_ord_id="ORDNONE", refund_sn="R", reason="")) == c.ORDER_NOT_FOUND
    assert await rejected(stage.mi.place_order(pay_ord_id="ORDNONE", pay_token="x")) == c.ORDER_NOT_FOUND
    uploaded = await stage.mi.upload_fees(stage.upload(await stage.authorize()))
    assert await rejected(stage.mi.place_order(pay_ord_id=uploaded.order.pay_ord_id, pay_token="forged")) == (
        c.PAY_TOKEN_MISMATCH
    )
    assert await rejected(stage.mi.refund(pay_ord_id=uploaded.order.pay_ord_id, refund_sn="R", reason="")) == (
        c.NOT_PAID
    )
    assert await stage.admin.balances(ID_NO) == (5000, 1500)


async def test_the_split_follows_the_configured_rules(db: Database, clock: FixedClock) -> None:
    admin = SandboxMobileInsuranceAdmin(db)
    await admin.add_insured_person(
        id_no="X1", name="王五", insurance_area="440300", personal_balance_fen=100000, family_balance_fen=100000
    )
    stingy = c.SplitRules(default_fund_ratio=Decimal("0.5"), deductible_fen=20000, family_account=False)
    sandbox = SandboxMobileInsurance(db, clock, stingy, page_base_url="http://mipay.invalid")
    location = await sandbox.authorize(id_no="X1", name="王五", return_url=RETURN_URL, state="s")
    auth = await sandbox.authorization(parse_qs(urlsplit(location).query)["authCode"][0])
    items = (c.FeeItem("1", "A", "a", "09", 30001), c.FeeItem("2", "B", "b", "03", 3))
    upload = c.FeeUpload(auth.pay_auth_no, ORG, "MZ1", "王五", "X1", 30004, items)
    # ⌊15000.5⌋ + ⌊1.5⌋ − 20000 < 0 → no fund; the personal account pays everything it can.
    assert (await sandbox.upload_fees(upload)).order.split == c.Split(30004, 0, 30004, 0, 0)
    assert stingy.split(items, personal_balance_fen=4, family_balance_fen=9, use_personal_account=True) == (
        c.Split(30004, 0, 4, 0, 30000)
    )
    assert RULES.split(items, personal_balance_fen=4, family_balance_fen=9, use_personal_account=True) == (
        c.Split(30004, 20001, 4, 9, 9990)  # 21000 + 1 − 1000 to the fund
    )


# Over HTTP only -------------------------------------------------------------------------------------
@pytest.fixture
async def platform(db: Database, clock: FixedClock) -> AsyncIterator[tuple[Keys, SandboxMobileInsurance, str]]:
    keys = make_keys()
    await SandboxMobileInsuranceAdmin(db).add_insured_person(
        id_no=ID_NO, name=NAME, insurance_area="440100", personal_balance_fen=5000, family_balance_fen=1500
    )
    sandbox = SandboxMobileInsurance(db, clock, RULES, page_base_url="http://unused")
    live = await LiveServer(mobile_insurance_sandbox_app(lambda: sandbox, keys.platform)).start()
    try:
        yield keys, sandbox, live.url
    finally:
        await live.stop()


async def _auth_no(sandbox: SandboxMobileInsurance) -> str:
    location = await sandbox.authorize(id_no=ID_NO, name=NAME, return_url=RETURN_URL, state="s")
    return (await sandbox.authorization(parse_qs(urlsplit(location).query)["authCode"][0])).pay_auth_no


def _upload(pay_auth_no: str) -> c.FeeUpload:
    return c.FeeUpload(pay_auth_no, ORG, "MZ-HTTP-1", NAME, ID_NO, 15000, BILL)


async def test_a_request_signed_with_another_key_is_refused_and_changes_nothing(
    platform: tuple[Keys, SandboxMobileInsurance, str], clock: FixedClock
) -> None:
    keys, sandbox, url = platform
    forger = wire.Party(APP_ID, APP_SECRET, generate_signing_key("SM2-SM3"), keys.hospital.peer_key)
    client = HttpMobileInsurance(url, forger, clock, timeout=5)
    pay_auth_no = await _auth_no(sandbox)
    try:
        assert await rejected(client.upload_fees(_upload(pay_auth_no))) == c.BAD_SIGNATURE
    finally:
        await client.aclose()
    honest = HttpMobileInsurance(url, keys.hospital, clock, timeout=5)
    try:
        uploaded = await honest.upload_fees(_upload(pay_auth_no))  # the payAuthNo was not spent by the forgery
        assert uploaded.order.split.total_fen == 15000
    finally:
        await honest.aclose()

    # Tampered on the way: a genuine envelope whose encData is replaced, or whose signData is altered.
    async with httpx.AsyncClient(base_url=url) as raw:
        genuine = wire.seal(keys.hospital, {"payOrdId": uploaded.order.pay_ord_id}, 1)
        swapped = {**genuine, "encData": wire.seal(keys.hospital, {"payOrdId": "ORDX"}, 1)["encData"]}
        for body in (swapped, {**genuine, "timestamp": "2"}, {**genuine, "appId": "Y" * 32}):
            answer = (await raw.post(wire.PATHS["6301"], json=body)).json()
            fields, data = wire.open_envelope(keys.hospital, answer)  # refusals are signed by the platform too
            assert (fields["code"], data) == (c.BAD_SIGNATURE, None)
        answer = (await raw.post(wire.PATHS["6301"], content=b"not json")).json()
        assert wire.open_envelope(keys.hospital, answer)[0]["code"] == c.BAD_REQUEST


Tamper = Callable[[dict[str, Any]], dict[str, Any]]


def relay(target: str, tamper: Tamper, hits: Counter[str]) -> Starlette:
    """Stands between the hospital and the platform and alters the platform's replies."""

    async def forward(request: Request) -> Response:
        hits[request.url.path] += 1
        async with httpx.AsyncClient() as http:
            answer = await http.post(
                target + request.url.path, content=await request.body(), headers={"content-type": "application/json"}
            )
        return JSONResponse(tamper(answer.json()))

    return Starlette(routes=[Route(path, forward, methods=["POST"]) for path in wire.PATHS.values()])


def _re_encrypted(envelope: dict[str, Any]) -> dict[str, Any]:
    """The platform's signature kept, its business data swapped for other data under the app's own key."""
    key = wire.sm4_key(APP_ID, APP_SECRET)
    return {**envelope, "encData": sm4_ecb_encrypt(key, wire.data_json({"ordStas": "4"}).encode()).hex().upper()}


@pytest.mark.parametrize("how", ["forged_by_another_key", "enc_data_replaced", "code_changed"])
async def test_a_reply_not_signed_by_the_platform_is_not_believed(
    platform: tuple[Keys, SandboxMobileInsurance, str], clock: FixedClock, how: str
) -> None:
    keys, sandbox, url = platform
    impostor = wire.Party(APP_ID, APP_SECRET, generate_signing_key("SM2-SM3"), keys.platform.peer_key)
    tampers: dict[str, Tamper] = {
        "forged_by_another_key": lambda e: wire.seal(impostor, {"ordStas": "4"}, 1, code="0", message="success"),
        "enc_data_replaced": _re_encrypted,
        "code_changed": lambda e: {**e, "code": "0" if e.get("code") != "0" else c.ORDER_NOT_FOUND},
    }
    hits: Counter[str] = Counter()
    live = await LiveServer(relay(url, tampers[how], hits)).start()
    client = HttpMobileInsurance(live.url, keys.hospital, clock, timeout=5, retries=0)
    try:
        with pytest.raises(SourceUnavailable, match="reply was refused"):
            await client.upload_fees(_upload(await _auth_no(sandbox)))
    finally:
        await client.aclose()
        await live.stop()
    assert hits[wire.PATHS["6201"]] == 1


def gate(behaviour: Callable[[str], Awaitable[Response]], hits: Counter[str]) -> Starlette:
    async def answer(request: Request) -> Response:
        hits[request.url.path] += 1
        return await behaviour(request.url.path)

    return Starlette(routes=[Route(path, answer, methods=["POST"]) for path in wire.PATHS.values()])


async def test_money_is_never_retried_reads_are_and_the_circuit_opens(clock: FixedClock) -> None:
    keys = make_keys()

    async def down(path: str) -> Response:
        return JSONResponse({"code": "INTERNAL"}, status_code=503)

    hits: Counter[str] = Counter()
    live = await LiveServer(gate(down, hits)).start()
    client = HttpMobileInsurance(
        live.url, keys.hospital, clock, timeout=5, retries=2, backoff_seconds=0.01, failure_threshold=100
    )
    try:
        with pytest.raises(SourceUnavailable, match="HTTP 503"):
            await client.place_order(pay_ord_id="O", pay_token="T")
        with pytest.raises(SourceUnavailable):
            await client.refund(pay_ord_id="O", refund_sn="R", reason="")
        with pytest.raises(SourceUnavailable):
            await client.upload_fees(_upload("A"))
        with pytest.raises(SourceUnavailable):
            await client.query(pay_ord_id="O")
        assert hits == {wire.PATHS["6202"]: 1, wire.PATHS["6203"]: 1, wire.PATHS["6201"]: 1, wire.PATHS["6301"]: 3}
    finally:
        await client.aclose()

    breaker = HttpMobileInsurance(
        live.url, keys.hospital, clock, timeout=5, retries=0, failure_threshold=2, cooldown_seconds=30
    )
    try:
        for _ in range(2):
            with pytest.raises(SourceUnavailable, match="HTTP 503"):
                await breaker.query(pay_ord_id="O")
        before = sum(hits.values())
        started = time.monotonic()
        with pytest.raises(SourceUnavailable, match="circuit open"):
            await breaker.place_order(pay_ord_id="O", pay_token="T")
        assert time.monotonic() - started < 0.05 and sum(hits.values()) == before
    finally:
        await breaker.aclose()
        await live.stop()


async def test_a_platform_that_does_not_answer_in_time_is_unavailable(clock: FixedClock) -> None:
    async def slow(path: str) -> Response:
        await asyncio.sleep(1)
        return JSONResponse({})

    hits: Counter[str] = Counter()
    live = await LiveServer(gate(slow, hits)).start()
    client = HttpMobileInsurance(live.url, make_keys().hospital, clock, timeout=0.2, retries=0)
    try:
        with pytest.raises(SourceUnavailable, match="timed out"):
            await client.place_order(pay_ord_id="O", pay_token="T")
    finally:
        await client.aclose()
        await live.stop()


async def test_concurrent_orders_and_refunds_move_the_money_once(stage: Stage) -> None:
    uploaded = await stage.mi.upload_fees(stage.upload(await stage.authorize()))
    pay_ord_id = uploaded.order.pay_ord_id

    async def outcome(call: Awaitable[Any]) -> str:
        try:
            await call
        except SourceRejected as exc:
            return exc.code
        return "OK"

    placed = await asyncio.gather(
        *(outcome(stage.mi.place_order(pay_ord_id=pay_ord_id, pay_token=uploaded.pay_token)) for _ in range(10))
    )
    assert Counter(placed) == {"OK": 1, c.ALREADY_PAID: 9}
    assert await stage.admin.balances(ID_NO) == (0, 0)

    refunds = await asyncio.gather(
        *(outcome(stage.mi.refund(pay_ord_id=pay_ord_id, refund_sn=f"RF{i}", reason="")) for i in range(10))
    )
    assert Counter(refunds) == {"OK": 1, c.ALREADY_REFUNDED: 9}
    assert await stage.admin.balances(ID_NO) == (5000, 1500)
