"""The comparison rules on their own: which differences between the channel, the HIS and the BFF are
discrepancies, of which kind, and which are how the flows are meant to end."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from datasources.clock import SHANGHAI
from datasources.store.models import PaymentOrder, PaymentRefund
from resolvers.payments import orders as o
from resolvers.reconciliation import compare as cmp

AT = datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)
ORDER = o.to_order(PaymentOrder(
    order_no="P1", account_id=1, patient_id=1, his_patient_id="9", purpose="REGISTRATION", subject="{}",
    channel="WECHAT_PAY", description="挂号费", total_fen=5000, self_pay_fen=5000, status=o.SETTLED,
    channel_ref="wx1", channel_trade_no="420001", his_receipt_no="RC1", created_at=AT,
    expires_at=AT + timedelta(minutes=15), paid_at=AT, settled_at=AT, updated_at=AT,
))


def _line(entry: str, reference: str, fen: int, order_no: str = "P1") -> cmp.Line:
    return cmp.Line(entry, reference, order_no, fen, "SUCCESS", AT)


def _refund(status: str = "SUCCEEDED", written_back: bool = True, fen: int = 5000) -> PaymentRefund:
    return PaymentRefund(
        refund_no="R1", order_no="P1", amount_fen=fen, self_pay_fen=fen, reason="", cause="OPERATOR", status=status,
        created_at=AT, updated_at=AT, succeeded_at=AT if status == "SUCCEEDED" else None,
        his_written_back_at=AT if written_back else None,
    )


def _day(channel: list[cmp.Line], his: list[cmp.Line], order: o.Order | None = ORDER,
         refund: PaymentRefund | None = None) -> cmp.Day:
    paid = order is not None and order.status in cmp.PAID_STATES
    return cmp.Day(
        "WECHAT_PAY", channel, his, {"P1": order} if order else {}, {"R1": refund} if refund else {},
        frozenset({"P1"} if paid else set()),
        frozenset({"R1"} if refund is not None and refund.status == "SUCCEEDED" else set()), {},
    )


def _kinds(day: cmp.Day) -> list[tuple[str, str, str]]:
    return [(f.kind, f.reference, f.action) for f in cmp.compare(day)]


def test_a_payment_told_alike_by_all_three_is_no_discrepancy() -> None:
    day = _day([_line("PAYMENT", "P1", 5000)], [_line("PAYMENT", "P1", 5000)])
    assert cmp.compare(day) == []
    assert cmp.totals(day) == cmp.Totals(cmp.Side(1, 5000), cmp.Side(1, 5000), cmp.Side(1, 5000))


def test_amounts_that_differ_on_any_side_are_an_amount_mismatch() -> None:
    [found] = cmp.compare(_day([_line("PAYMENT", "P1", 5000)], [_line("PAYMENT", "P1", 4000)]))
    assert (found.kind, found.channel_fen, found.his_fen, found.bff_fen) == ("AMOUNT_MISMATCH", 5000, 4000, 5000)


def test_a_written_back_payment_absent_from_the_his_ledger_is_missing_at_the_his() -> None:
    assert _kinds(_day([_line("PAYMENT", "P1", 5000)], [])) == [("MISSING_AT_HIS", "P1", "MANUAL")]
    paid_only = replace(ORDER, status=o.PAID, settled_at=None, his_receipt_no=None)
    assert _kinds(_day([_line("PAYMENT", "P1", 5000)], [], paid_only)) == [("MISSING_AT_HIS", "P1", "AWAIT_BFF")]


def test_a_payment_the_bff_has_but_the_channel_does_not_is_missing_at_the_channel() -> None:
    assert _kinds(_day([], [_line("PAYMENT", "P1", 5000)])) == [("MISSING_AT_CHANNEL", "P1", "MANUAL")]


def test_paid_at_the_channel_but_closed_here_and_unknown_to_the_his_proposes_a_refund() -> None:
    closed = replace(ORDER, status=o.CLOSED, paid_at=None, settled_at=None, his_receipt_no=None)
    [found] = cmp.compare(_day([_line("PAYMENT", "P1", 5000)], [], closed))
    assert (found.kind, found.action, found.bff_status) == ("STATUS_MISMATCH", "PROPOSE_REFUND", "CLOSED")
    assert _kinds(_day([_line("PAYMENT", "P9", 700, "P9")], [], None)) == [("MISSING_AT_BFF", "P9", "MANUAL")]


def test_a_payment_the_his_refused_and_the_bff_refunded_in_full_is_not_a_discrepancy() -> None:
    refunded = replace(ORDER, status=o.REFUNDED, settled_at=None, his_receipt_no=None, refunded_fen=5000)
    never_at_his = _refund(written_back=False)
    day = _day([_line("PAYMENT", "P1", 5000), _line("REFUND", "R1", 5000)], [], refunded, never_at_his)
    assert cmp.compare(day) == []
    still_refunding = replace(refunded, status=o.REFUNDING)
    assert _kinds(_day([_line("PAYMENT", "P1", 5000)], [], still_refunding)) == [("STATUS_MISMATCH", "P1", "MANUAL")]


def test_refunds_are_matched_by_refund_number() -> None:
    paid = [_line("PAYMENT", "P1", 5000)]
    both = [*paid, _line("REFUND", "R1", 5000)]
    assert cmp.compare(_day(both, both,
                            refund=_refund())) == []
    # Refunded at the channel, not at the HIS, though the HIS had agreed to it.
    assert _kinds(_day(both, paid, refund=_refund())) == [
        ("MISSING_AT_HIS", "R1", "MANUAL")]
    # The channel returned the money; the BFF still waits to hear it: the sweeper will ask.
    assert _kinds(_day(both, both,
                       refund=_refund("PROCESSING"))) == [("STATUS_MISMATCH", "R1", "AWAIT_BFF")]
    # The HIS recorded the refund but the channel refused it.
    assert _kinds(_day(paid, both, refund=_refund("FAILED"))) == [
        ("MISSING_AT_CHANNEL", "R1", "MANUAL")]
    assert _kinds(_day([*paid, _line("REFUND", "R7", 100)], paid)) == [("MISSING_AT_BFF", "R7", "MANUAL")]
