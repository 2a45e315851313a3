"""How the platform splits a bill: the sandbox's configuration, never constants in code paths.

The same idea as mobile insurance's ``SplitRules``, shaped by the national platform's settlement
(甲乙丙 classes, a deductible, a pooled-fund ratio, the personal and family accounts). Exactly:

1. Each fee line is classified by its ``med_list_codg`` in ``catalogue``: class A (甲) is wholly
   in scope; class B (乙) has ``b_selfpay_prop`` of it paid first by the patient (``preselfpay``,
   rounded half up to the fen) and the rest in scope; class C (丙) is wholly own pay
   (``fulamt_ownpay``). A code not in the catalogue is refused, as the platform refuses it.
2. Of the in-scope sum, the deductible (``deductible_fen`` of the outpatient or inpatient rules,
   per settlement) is borne by the person; the pooled fund pays ``fund_ratio`` of the rest,
   rounded down to the fen.
3. The person's part (everything the fund does not pay) is paid by the personal account as far as
   its balance goes when the settlement asks for it (``acct_used_flag``), then by the family
   mutual-aid account (共济) as far as its balance goes when ``family_account`` is on; the rest is
   cash.

Amounts are integer fen throughout; the parts always add up to the total.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any

from datasources.insurance import contract as c


@dataclass(frozen=True, slots=True)
class CareRules:
    """The outpatient or the inpatient part of the rules."""

    deductible_fen: int = 0
    fund_ratio: Decimal = Decimal("0")


@dataclass(frozen=True, slots=True)
class Split:
    medfee_sumamt_fen: int
    fulamt_ownpay_amt_fen: int
    preselfpay_amt_fen: int
    inscp_scp_amt_fen: int
    act_pay_dedc_fen: int
    hifp_pay_fen: int
    acct_pay_fen: int
    acct_mulaid_pay_fen: int
    psn_cash_pay_fen: int
    negative: bool = False  # a settlement cancel's record: every part negated

    @property
    def fund_pay_sumamt_fen(self) -> int:
        return self.hifp_pay_fen

    @property
    def psn_part_amt_fen(self) -> int:
        return self.medfee_sumamt_fen - self.fund_pay_sumamt_fen

    def __post_init__(self) -> None:
        parts = (self.hifp_pay_fen, self.acct_pay_fen, self.acct_mulaid_pay_fen, self.psn_cash_pay_fen)
        signs_agree = max(parts) <= 0 if self.negative else min(parts) >= 0
        if sum(parts) != self.medfee_sumamt_fen or not signs_agree:
            raise ValueError(f"a split's parts must be non-negative and add up to its total: {self}")


@dataclass(frozen=True, slots=True)
class SettlementRules:
    catalogue: Mapping[str, str] = field(default_factory=dict)  # med_list_codg → chrgitm_lv
    b_selfpay_prop: Decimal = Decimal("0.10")
    outpatient: CareRules = CareRules()
    inpatient: CareRules = CareRules()
    family_account: bool = False

    def classify(self, feedetl_sn: str, med_list_codg: str, amount_fen: int) -> c.FeeClassification:
        """Raises ``KeyError`` for a code outside the catalogue."""
        level = self.catalogue[med_list_codg]
        if level == c.CLASS_A:
            prop, own, pre = Decimal("0"), 0, 0
        elif level == c.CLASS_B:
            prop, own = self.b_selfpay_prop, 0
            pre = int((Decimal(amount_fen) * prop).to_integral_value(rounding=ROUND_HALF_UP))
        else:
            prop, own, pre = Decimal("1"), amount_fen, 0
        return c.FeeClassification(
            feedetl_sn=feedetl_sn, det_item_fee_sumamt_fen=amount_fen, chrgitm_lv=level, selfpay_prop=prop,
            fulamt_ownpay_amt_fen=own, preselfpay_amt_fen=pre, inscp_scp_amt_fen=amount_fen - own - pre,
        )

    def split(
        self,
        lines: list[c.FeeClassification],
        *,
        inpatient: bool,
        personal_balance_fen: int,
        family_balance_fen: int,
        acct_used: bool,
    ) -> Split:
        care = self.inpatient if inpatient else self.outpatient
        total = sum(line.det_item_fee_sumamt_fen for line in lines)
        in_scope = sum(line.inscp_scp_amt_fen for line in lines)
        deductible = min(in_scope, care.deductible_fen)
        fund = int((Decimal(in_scope - deductible) * care.fund_ratio).to_integral_value(rounding=ROUND_DOWN))
        rest = total - fund
        personal = min(rest, max(personal_balance_fen, 0)) if acct_used else 0
        rest -= personal
        family = min(rest, max(family_balance_fen, 0)) if acct_used and self.family_account else 0
        return Split(
            medfee_sumamt_fen=total,
            fulamt_ownpay_amt_fen=sum(line.fulamt_ownpay_amt_fen for line in lines),
            preselfpay_amt_fen=sum(line.preselfpay_amt_fen for line in lines),
            inscp_scp_amt_fen=in_scope, act_pay_dedc_fen=deductible, hifp_pay_fen=fund,
            acct_pay_fen=personal, acct_mulaid_pay_fen=family, psn_cash_pay_fen=rest - family,
        )

    # Stored as JSON in the sandbox's tables, so every worker and the admin see the same rules.
    def to_json(self) -> str:
        def care(rules: CareRules) -> dict[str, Any]:
            return {"deductible_fen": rules.deductible_fen, "fund_ratio": str(rules.fund_ratio)}

        return json.dumps({
            "catalogue": dict(self.catalogue), "b_selfpay_prop": str(self.b_selfpay_prop),
            "outpatient": care(self.outpatient), "inpatient": care(self.inpatient),
            "family_account": self.family_account,
        }, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SettlementRules:
        data = json.loads(text)

        def care(value: dict[str, Any]) -> CareRules:
            return CareRules(int(value["deductible_fen"]), Decimal(value["fund_ratio"]))

        return cls(
            catalogue=dict(data["catalogue"]), b_selfpay_prop=Decimal(data["b_selfpay_prop"]),
            outpatient=care(data["outpatient"]), inpatient=care(data["inpatient"]),
            family_account=bool(data["family_account"]),
        )


# The demo platform's rules until the admin sets others: a few catalogue codes of each class, an
# employee-insurance-like outpatient and inpatient policy.
DEMO_RULES = SettlementRules(
    catalogue={
        "001102000010000-110200001": c.CLASS_A,  # general outpatient consultation (诊查费)
        "XJ01CAA040A001010104023": c.CLASS_A,  # amoxicillin capsules
        "XC10AAA052A001010100873": c.CLASS_B,  # atorvastatin tablets
        "001201000010000-120100001": c.CLASS_B,  # inpatient bed (床位费)
        "XR05XXP011B001010101476": c.CLASS_C,  # a self-pay cough syrup
    },
    b_selfpay_prop=Decimal("0.10"),
    outpatient=CareRules(deductible_fen=0, fund_ratio=Decimal("0.50")),
    inpatient=CareRules(deductible_fen=80_000, fund_ratio=Decimal("0.85")),
    family_account=True,
)
