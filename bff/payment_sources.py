"""The money sources of one BFF process, as configured: the HIS's billing and the payment channels.

Sandbox channels need keys on both sides (the merchant's and the channel's); they are generated
once into ``data_dir/sandbox/`` and reused, so every process on the machine (and a restart) signs
and verifies with the same ones. They are sandbox keys: production refuses sandbox channels.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bff.settings import Settings
from datasources.alipay import contract as ali
from datasources.clock import Clock
from datasources.crypto.primitives import (
    generate_signing_key,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
)
from datasources.store.db import Database
from datasources.wechatpay import contract as wx


@dataclass(slots=True)
class MoneySources:
    billing: Any = None
    inpatient: Any = None
    wechatpay: Any = None
    alipay: Any = None
    # The sandboxes themselves (their back offices: the payer's "pay" button), when in sandbox mode.
    wechatpay_sandbox: Any = None
    alipay_sandbox: Any = None
    mobile_insurance: Any = None
    wechat_med_ins: Any = None

    async def aclose(self) -> None:
        for source in (
            self.billing, self.inpatient, self.wechatpay, self.alipay, self.alipay_sandbox, self.mobile_insurance
        ):
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()


def _sandbox_key(folder: Path, name: str) -> bytes:
    """A sandbox RSA key kept in ``folder``: created by the first process, read by the others."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.pem"
    if not path.exists():
        pem = private_key_pem(generate_signing_key("RSA-SHA256"))
        temp = folder / f".{name}.{secrets.token_hex(4)}"
        temp.write_bytes(pem)
        temp.chmod(0o600)
        try:
            os.link(temp, path)  # atomic: of two processes starting together, one key wins
        except FileExistsError:
            pass
        finally:
            temp.unlink(missing_ok=True)
    return path.read_bytes()


def _apiv3_key(folder: Path) -> bytes:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "wechatpay-apiv3.key"
    if not path.exists():
        path.write_text(secrets.token_hex(16))
        path.chmod(0o600)
    return path.read_text().strip().encode()


def build_money_sources(settings: Settings, db: Database, clock: Clock) -> MoneySources:
    money = MoneySources()
    keys = settings.data_dir / "sandbox"
    if settings.his.mode == "http":
        from datasources.his.billing_http import HttpHISBilling

        his = settings.his
        money.billing = HttpHISBilling(
            his.url, timeout=his.timeout_seconds, retries=his.retries, failure_threshold=his.failure_threshold,
            cooldown_seconds=his.cooldown_seconds,
        )
        from datasources.his.inpatient_http import HttpHISInpatient

        money.inpatient = HttpHISInpatient(
            his.url, timeout=his.timeout_seconds, retries=his.retries, failure_threshold=his.failure_threshold,
            cooldown_seconds=his.cooldown_seconds,
        )
    else:
        from datasources.his.billing_sandbox import SandboxHISBilling

        money.billing = SandboxHISBilling(db, clock)
        from datasources.his.inpatient_sandbox import SandboxHISInpatient

        money.inpatient = SandboxHISInpatient(db, clock)

    w = settings.wechatpay
    mode = settings.payment_mode(w)
    if mode == "sandbox":
        from datasources.wechatpay.sandbox import PlatformKeys, SandboxWeChatPay

        merchant = _sandbox_key(keys, "wechatpay-merchant")
        platform = _sandbox_key(keys, "wechatpay-platform")
        config = wx.MerchantConfig(
            mchid=w.mchid, appid=w.appid, private_key_pem=merchant, certificate_serial=w.certificate_serial,
            apiv3_key=_apiv3_key(keys), wechatpay_public_key_pem=public_key_pem(load_private_key(platform)),
            wechatpay_public_key_id=w.public_key_id,
        )
        merchant_certificates = ((w.certificate_serial, public_key_pem(load_private_key(merchant))),)
        money.wechatpay = money.wechatpay_sandbox = SandboxWeChatPay(
            db, clock, config, PlatformKeys(platform, w.public_key_id, merchant_certificates)
        )
        from datasources.wechatpay.medins_sandbox import SandboxWeChatMedInsPay

        money.wechat_med_ins = SandboxWeChatMedInsPay(money.wechatpay_sandbox)
    elif mode == "http":
        from datasources.wechatpay.http import HttpWeChatPay

        assert w.private_key_file and w.platform_public_key_file and w.apiv3_key
        config = wx.MerchantConfig(
            mchid=w.mchid, appid=w.appid, private_key_pem=w.private_key_file.read_bytes(),
            certificate_serial=w.certificate_serial, apiv3_key=w.apiv3_key.get_secret_value().encode(),
            wechatpay_public_key_pem=w.platform_public_key_file.read_bytes(), wechatpay_public_key_id=w.public_key_id,
        )
        money.wechatpay = money.wechat_med_ins = HttpWeChatPay(
            w.url, config, timeout=w.timeout_seconds, retries=w.retries, failure_threshold=w.failure_threshold,
            cooldown_seconds=w.cooldown_seconds,
        )

    a = settings.alipay
    mode = settings.payment_mode(a)
    if mode == "sandbox":
        from datasources.alipay.sandbox import SandboxAlipay

        merchant_key = load_private_key(_sandbox_key(keys, "alipay-merchant"))
        platform_key = load_private_key(_sandbox_key(keys, "alipay-platform"))
        money.alipay = money.alipay_sandbox = SandboxAlipay(
            db, clock, ali.PlatformConfig(a.app_id, merchant_key.public_key(), platform_key)  # type: ignore[union-attr]
        )
    elif mode == "http":
        from datasources.alipay.http import HttpAlipay

        assert a.private_key_file and a.platform_public_key_file
        config_a = ali.MerchantConfig(
            a.app_id, load_private_key(a.private_key_file.read_bytes()),
            load_public_key(a.platform_public_key_file.read_bytes()),
        )
        money.alipay = HttpAlipay(
            a.url, config_a, timeout=a.timeout_seconds, retries=a.retries, failure_threshold=a.failure_threshold,
            cooldown_seconds=a.cooldown_seconds,
        )
    m = settings.mobile_insurance
    mode = settings.payment_mode(m)
    if mode == "sandbox":
        from datasources.mobile_insurance.contract import SplitRules
        from datasources.mobile_insurance.sandbox import SandboxMobileInsurance

        rules = SplitRules(fund_ratios=m.fund_ratios, deductible_fen=m.deductible_fen, family_account=m.family_account)
        base = settings.public_base_url or f"http://{settings.host}:{settings.port}"
        page = base + "/sandbox/mobile-insurance"
        money.mobile_insurance = SandboxMobileInsurance(db, clock, rules, page_base_url=page)
    elif mode == "http":
        from datasources.mobile_insurance.http import HttpMobileInsurance
        from datasources.mobile_insurance.wire import Party

        assert m.private_key_file and m.platform_public_key_file and m.app_secret
        party = Party(
            m.app_id, m.app_secret.get_secret_value(), load_private_key(m.private_key_file.read_bytes()),
            load_public_key(m.platform_public_key_file.read_bytes()),
        )
        money.mobile_insurance = HttpMobileInsurance(
            m.url, party, clock, timeout=m.timeout_seconds, retries=m.retries, failure_threshold=m.failure_threshold,
            cooldown_seconds=m.cooldown_seconds,
        )
    return money
