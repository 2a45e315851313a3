"""A run as the finance office files it: an .xlsx workbook with Chinese headers, a summary sheet
(对账汇总: each side's counts and amounts) and the discrepancies (差异明细). Amounts are yuan with
two decimals, computed from fen exactly (Decimal), never through float."""

from __future__ import annotations

import io
from decimal import Decimal

from openpyxl import Workbook

from datasources.clock import SHANGHAI
from resolvers.reconciliation import compare as cmp
from resolvers.reconciliation.runs import Run

CHANNEL_NAMES = {"WECHAT_PAY": "微信支付", "ALIPAY": "支付宝"}
STATUS_NAMES = {"RUNNING": "进行中", "OK": "平账", "DISCREPANCIES": "有差异", "FAILED": "失败"}
KIND_NAMES = {
    cmp.MISSING_AT_CHANNEL: "渠道缺失", cmp.MISSING_AT_HIS: "HIS缺失", cmp.MISSING_AT_BFF: "平台缺失",
    cmp.AMOUNT_MISMATCH: "金额不符", cmp.STATUS_MISMATCH: "状态不符",
}
ACTION_NAMES = {
    cmp.REFUND_PENDING_APPROVAL: "已生成退款，待审批", cmp.AWAIT_BFF: "系统自动处理中", cmp.MANUAL: "人工处理",
    cmp.PROPOSE_REFUND: "建议退款",
}
ENTRY_NAMES = {cmp.PAYMENT: "支付", cmp.REFUND: "退款"}
ITEM_HEADERS = (
    "类型", "差异类别", "业务单号", "订单号", "渠道金额(元)", "HIS金额(元)", "平台金额(元)", "渠道状态", "HIS状态",
    "平台状态", "差异原因", "建议处理", "退款单号", "处理时间",
)


def _yuan(fen: int | None) -> Decimal | None:
    return None if fen is None else (Decimal(fen) / 100).quantize(Decimal("0.01"))


def xlsx(run: Run) -> bytes:
    book = Workbook()
    summary = book.active
    assert summary is not None
    summary.title = "对账汇总"
    summary.append(("对账日期", run.day.isoformat()))
    summary.append(("支付渠道", CHANNEL_NAMES.get(run.channel, run.channel)))
    summary.append(("对账结果", STATUS_NAMES.get(run.status, run.status)))
    summary.append(("开始时间", run.started_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")))
    summary.append(("发起方式", "定时任务" if run.started_by == "SCHEDULE" else "操作员"))
    if run.failure:
        summary.append(("失败原因", run.failure))
    summary.append(())
    summary.append(("对账方", "支付笔数", "支付金额(元)", "退款笔数", "退款金额(元)"))
    if run.totals is not None:
        for name, side in (("支付渠道", run.totals.channel), ("HIS", run.totals.his), ("平台", run.totals.bff)):
            summary.append((name, side.payments, _yuan(side.payments_fen), side.refunds, _yuan(side.refunds_fen)))
    details = book.create_sheet("差异明细")
    details.append(ITEM_HEADERS)
    for item in run.items:
        resolved = item.resolved_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S") if item.resolved_at else ""
        details.append((
            ENTRY_NAMES.get(item.entry, item.entry), KIND_NAMES.get(item.kind, item.kind), item.reference,
            item.order_no, _yuan(item.channel_fen), _yuan(item.his_fen), _yuan(item.bff_fen),
            item.channel_status or "", item.his_status or "", item.bff_status or "", item.reason,
            ACTION_NAMES.get(item.action, item.action), item.refund_no or "", resolved,
        ))
    for sheet in (summary, details):
        for column in sheet.columns:
            letter = column[0].column_letter
            width = max(len(str(c.value)) if c.value is not None else 0 for c in column)
            sheet.column_dimensions[letter].width = min(60, max(10, width * 2))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
