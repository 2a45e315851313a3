"""Settings from environment variables and an optional TOML file.

Order of precedence: environment variables, then the TOML file named by ``BFF_CONFIG``
(default ``bff.toml`` in the working directory, if present), then the defaults below.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from datasources.store.audit import MIN_RETENTION_DAYS

SourceMode = Literal["sandbox", "http"]
DEV_CALLBACK_SECRET = "dev-callback-secret"  # noqa: S105 - development only; production refuses it


class SourceChoice(BaseModel):
    """Which implementation of an external system runs: the built-in sandbox or the HTTP client."""

    mode: SourceMode = "sandbox"
    url: str = ""
    timeout_seconds: float = 5.0
    # HTTP only: reads are retried this often; writes never are.
    retries: int = 2
    # HTTP only: after this many consecutive failures calls fail fast for cooldown_seconds.
    failure_threshold: int = 5
    cooldown_seconds: float = 10.0


class PaymentChannelChoice(SourceChoice):
    """A payment channel: the sandbox (development; no real money), the channel's API, or off.
    Unset: the sandbox in development, off in production."""

    mode: Literal["sandbox", "http", "off"] | None = None  # type: ignore[assignment]
    # HTTP only: the files holding the merchant's private key and the channel's public key (PEM).
    private_key_file: Path | None = None
    platform_public_key_file: Path | None = None


class WeChatPayChoice(PaymentChannelChoice):
    url: str = "https://api.mch.weixin.qq.com"
    mchid: str = "1900000109"
    appid: str = "wx1234567890abcdef"
    # The serial of the merchant API certificate, and WeChat Pay's public key id (PUB_KEY_ID_...).
    certificate_serial: str = "4F0D7E1B3C2A59687F6E5D4C3B2A19081726354A"
    public_key_id: str = "PUB_KEY_ID_0119000001092026113000000000000001"
    apiv3_key: SecretStr | None = None


class AlipayChoice(PaymentChannelChoice):
    url: str = "https://openapi.alipay.com/gateway.do"
    app_id: str = "2021000000000001"


class MobileInsuranceChoice(PaymentChannelChoice):
    """医保移动支付 2.0. The sandbox splits by the rules below (the platform's own, in a real one)."""

    url: str = ""
    app_id: str = "1G2HS9J0R01A7F6E"
    app_secret: SecretStr | None = None
    # Sandbox only: the fund's share per fee category (medChrgitmType), the deductible, the family account.
    fund_ratios: dict[str, Decimal] = Field(
        default_factory=lambda: {
            "09": Decimal("0.70"), "04": Decimal("0.60"), "03": Decimal("0.50"), "05": Decimal("0.60")
        }
    )
    deductible_fen: int = Field(default=0, ge=0)
    family_account: bool = True


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="", env_nested_delimiter="__", extra="ignore", case_sensitive=False
    )

    environment: Literal["development", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///var/bff.db"
    # PostgreSQL only: the schema (search_path) holding the BFF's tables, when not "public".
    database_schema: str | None = None
    redis_url: str | None = None
    # Prefix of this deployment's pub/sub channels on a shared Redis.
    broker_namespace: str = "bff"
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("var")
    # The demo hospital (accounts with published passwords): loaded on first start in development
    # only, unless set. Production refuses it.
    load_demo_data: bool | None = None

    his: SourceChoice = Field(default_factory=SourceChoice)
    credit: SourceChoice = Field(default_factory=SourceChoice)
    wechatpay: WeChatPayChoice = Field(default_factory=WeChatPayChoice)
    alipay: AlipayChoice = Field(default_factory=AlipayChoice)
    mobile_insurance: MobileInsuranceChoice = Field(default_factory=MobileInsuranceChoice)
    # Face verification at kiosks: the sandbox (development default) or off (no service contracted yet).
    face_verification: Literal["sandbox", "off"] | None = None
    # The hospital as the insurance platform knows it (定点医药机构编码 and name).
    institution_code: str = Field(default="H44010600001", min_length=1, max_length=32)
    hospital_name: str = Field(default="示范医院", min_length=1, max_length=64)
    # Where the payment channels send their notifications: this BFF's public https address.
    # Required in production; in development, learned from the first request when unset.
    public_base_url: str = ""
    # An unpaid payment order closes after this many minutes (a registration's hold ends it sooner).
    payment_order_minutes: int = Field(default=15, ge=2, le=120)
    # How often open orders past their time, unrecorded payments and refunds under way are looked at.
    payment_sweep_seconds: float = Field(default=30.0, gt=0)
    # The hour (Asia/Shanghai) the daily reconciliation of yesterday's payments runs for each enabled
    # channel; -1 turns the job off. Operators can run any past day at any time.
    reconciliation_hour: int = Field(default=6, ge=-1, le=23)

    # Same-day registration and check-in: the caller must be within this distance of the campus.
    geofence_radius_m: float = 1000.0
    # Taking a number (same-day registration) closes this many minutes before the slot ends.
    take_number_cutoff_minutes: int = 0
    # Appointments can be cancelled until this many minutes before the slot starts.
    cancel_cutoff_minutes: int = 60
    # An unpaid registration holds its slot this long before it is released.
    unpaid_hold_minutes: int = 15
    # How often the hold sweeper looks for expired unpaid registrations.
    hold_sweep_seconds: float = 30.0
    # permessage-deflate on WebSockets. Off: the BFF's frames are small (a queue position, a chat
    # line), and compressing each one for each subscriber costs more CPU than it saves bytes.
    ws_compression: bool = False
    # The garbage collector's young-generation threshold (net allocations between collections);
    # see bff/app.py for why it is high. bff_gc_pause_seconds on /metrics shows the effect.
    gc_young_threshold: int = Field(default=10_000, ge=700)

    session_idle_minutes: int = 120
    session_absolute_hours: int = 72
    login_max_failures: int = 5
    login_lockout_minutes: int = 15
    # The issuer authenticator apps show next to a staff member's TOTP codes.
    totp_issuer: str = Field(default="Hospital BFF", min_length=1, max_length=64)

    # Transport (README "Transport"). HSTS goes on responses served over HTTPS: by uvicorn itself
    # (TLS_CERTFILE) or by a proxy in FORWARDED_ALLOW_IPS that says so in X-Forwarded-Proto.
    hsts_max_age: int = Field(default=31_536_000, ge=0)
    hsts_include_subdomains: bool = True
    hsts_preload: bool = False
    # Plain-HTTP requests answered with 308 to https (health probes excepted); unset: on in production.
    https_redirect: bool | None = None
    # Proxies whose X-Forwarded-Proto / X-Forwarded-For are believed: addresses or networks, comma-separated.
    forwarded_allow_ips: str = "127.0.0.1"
    # uvicorn serves HTTPS itself, TLS 1.3 only, when a certificate (PEM chain) is given.
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None

    # Shared secret of the HIS / nurse-station callbacks (HMAC-SHA256 over the body).
    callback_secret: str = DEV_CALLBACK_SECRET
    # Master key (base64 of 32 bytes) that wraps every managed key; generated into data_dir on first
    # start when unset. In production keep it out of the data directory (env var, secret store, HSM).
    master_key: str | None = None
    # The master key in an HSM instead (datasources/store/hsm.py): the PKCS#11 module (.so), the
    # token's label, the user PIN and the AES-256 key's label. Set the module to use it; MASTER_KEY /
    # data_dir/master.key is then read only by `python -m bff.keys rewrap`, to move keys to the HSM.
    master_key_pkcs11_module: str | None = None
    master_key_pkcs11_token: str | None = None
    master_key_pkcs11_pin: SecretStr | None = None
    master_key_pkcs11_key_label: str = Field(default="bff-master-key", min_length=1)
    # Algorithm of new writes of personal data at rest; switching it applies at once to new writes,
    # old values stay readable and `python -m bff.keys reencrypt` moves them.
    field_encryption_algorithm: Literal["A256GCM", "SM4GCM"] = "A256GCM"
    # Algorithm sealing each audit record (the one log that names people).
    audit_encryption_algorithm: Literal["SM4GCM", "A256GCM"] = "SM4GCM"
    # Audit records older than this are purged (daily, and by `python -m bff.audit purge`); at least
    # 6 months (183 days) by rule, so a smaller value is refused.
    audit_retention_days: int = 190
    # How often each process runs the audit retention purge.
    audit_purge_seconds: float = Field(default=86_400.0, gt=0)
    # How often each process reloads the managed keys (a rotation is also broadcast at once).
    keyring_refresh_seconds: float = 60.0

    # Signed requests (clients/signing.py) on /graphql and /callbacks/: "required" refuses unsigned
    # ones; "optional" lets them through, counted and logged. Unset: required in production.
    request_signatures: Literal["optional", "required"] | None = None
    # Path prefixes the signature check guards (exact paths, or prefixes ending in "/").
    signed_routes: list[str] = Field(default_factory=lambda: ["/graphql", "/callbacks/"])
    # How far a request's X-Timestamp may be from the gateway's clock; nonces are kept twice as long.
    signature_max_skew_seconds: int = Field(default=300, ge=30, le=3600)
    # App certificates: default validity, and how many days ahead operators are warned of expiry.
    app_certificate_valid_days: int = Field(default=365, ge=1, le=825)
    certificate_expiry_warning_days: int = Field(default=30, ge=1)
    # The organisation named in the app CA's certificates (the hospital).
    ca_organization: str = Field(default="Hospital BFF", min_length=1, max_length=64)
    # Algorithm of the BFF's response signatures (for apps registered to receive them).
    response_signature_algorithm: Literal["SM2-SM3", "RSA-SHA256"] = "SM2-SM3"
    # The server's RSA-OAEP key that wraps each request's data key (fields that travel encrypted).
    transport_key_algorithm: Literal["RSA-OAEP-2048", "RSA-OAEP-4096"] = "RSA-OAEP-2048"

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Settings:
        if self.environment == "production" and self.load_demo_data:
            raise ValueError("LOAD_DEMO_DATA=true in production: the demo accounts' passwords are public.")
        if self.environment == "production" and self.callback_secret == DEV_CALLBACK_SECRET:
            raise ValueError("CALLBACK_SECRET must be set in production (the development default is public).")
        if self.credit.mode == "http":
            raise ValueError("CREDIT__MODE=http: there is no HTTP client for the credit platform yet; use sandbox.")
        if self.his.mode == "http" and not self.his.url:
            raise ValueError("HIS__MODE=http needs HIS__URL, the base URL of the HIS gateway.")
        channels = (("WECHATPAY", self.wechatpay), ("ALIPAY", self.alipay), ("MOBILE_INSURANCE", self.mobile_insurance))
        for name, channel in channels:
            if self.environment == "production" and channel.mode == "sandbox":
                raise ValueError(f"{name}__MODE=sandbox in production takes no real money; use http or off.")
            keys = (channel.private_key_file, channel.platform_public_key_file)
            if channel.mode == "http" and None in keys:
                raise ValueError(
                    f"{name}__MODE=http needs {name}__PRIVATE_KEY_FILE (the merchant's key) and "
                    f"{name}__PLATFORM_PUBLIC_KEY_FILE (the channel's public key), both PEM."
                )
        if self.mobile_insurance.mode == "http" and self.mobile_insurance.app_secret is None:
            raise ValueError("MOBILE_INSURANCE__MODE=http needs MOBILE_INSURANCE__APP_SECRET (from the platform).")
        if self.wechatpay.mode == "http" and self.wechatpay.apiv3_key is None:
            raise ValueError("WECHATPAY__MODE=http needs WECHATPAY__APIV3_KEY (32 characters, merchant portal).")
        takes_money = "http" in (self.wechatpay.mode, self.alipay.mode)
        if self.environment == "production" and takes_money and not self.public_base_url.startswith("https://"):
            raise ValueError("PUBLIC_BASE_URL (https://...) is required in production: the payment channels notify it.")
        return self

    @property
    def face_verification_mode(self) -> str:
        if self.face_verification is not None:
            return self.face_verification
        return "sandbox" if self.environment == "development" else "off"

    def payment_mode(self, channel: PaymentChannelChoice) -> str:
        """sandbox, http or off, with the environment's default applied."""
        if channel.mode is not None:
            return channel.mode
        return "sandbox" if self.environment == "development" else "off"

    @model_validator(mode="after")
    def _audit_kept_six_months(self) -> Settings:
        if self.audit_retention_days < MIN_RETENTION_DAYS:
            raise ValueError(
                f"AUDIT_RETENTION_DAYS={self.audit_retention_days} is too short: audit records are kept at "
                f"least 6 months, so set {MIN_RETENTION_DAYS} days or more (the default is 190)."
            )
        return self

    @model_validator(mode="after")
    def _hsm_is_complete(self) -> Settings:
        if self.master_key_pkcs11_module and (not self.master_key_pkcs11_token or self.master_key_pkcs11_pin is None):
            raise ValueError(
                "MASTER_KEY_PKCS11_MODULE needs MASTER_KEY_PKCS11_TOKEN (the token's label) and MASTER_KEY_PKCS11_PIN."
            )
        return self

    @model_validator(mode="after")
    def _transport_is_coherent(self) -> Settings:
        if self.tls_keyfile is not None and self.tls_certfile is None:
            raise ValueError("TLS_KEYFILE needs TLS_CERTFILE, the certificate chain it belongs to.")
        if self.hsts_preload and (not self.hsts_include_subdomains or self.hsts_max_age < 31_536_000):
            raise ValueError(
                "HSTS_PRELOAD needs HSTS_INCLUDE_SUBDOMAINS=true and HSTS_MAX_AGE of at least 31536000 "
                "(what browsers' preload lists require)."
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = Path(os.environ.get("BFF_CONFIG", "bff.toml"))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def loads_demo_data(self) -> bool:
        return self.environment == "development" if self.load_demo_data is None else self.load_demo_data

    @property
    def signatures_required(self) -> bool:
        if self.request_signatures is None:
            return self.environment == "production"
        return self.request_signatures == "required"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def redirects_to_https(self) -> bool:
        return self.environment == "production" if self.https_redirect is None else self.https_redirect

    @property
    def operators_need_second_factor(self) -> bool:
        """Production: an operator without a confirmed TOTP factor cannot log in (README "Staff login")."""
        return self.environment == "production"
