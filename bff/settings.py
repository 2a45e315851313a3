"""Settings from environment variables and an optional TOML file.

Order of precedence: environment variables, then the TOML file named by ``BFF_CONFIG``
(default ``bff.toml`` in the working directory, if present), then the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

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
    load_demo_data: bool = True

    his: SourceChoice = Field(default_factory=SourceChoice)
    credit: SourceChoice = Field(default_factory=SourceChoice)

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

    # Shared secret of the HIS / nurse-station callbacks (HMAC-SHA256 over the body).
    callback_secret: str = DEV_CALLBACK_SECRET
    # Master key for field encryption at rest; generated into data_dir on first start when unset.
    master_key: str | None = None

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Settings:
        if self.environment == "production" and self.callback_secret == DEV_CALLBACK_SECRET:
            raise ValueError("CALLBACK_SECRET must be set in production (the development default is public).")
        if self.credit.mode == "http":
            raise ValueError("CREDIT__MODE=http: there is no HTTP client for the credit platform yet; use sandbox.")
        if self.his.mode == "http" and not self.his.url:
            raise ValueError("HIS__MODE=http needs HIS__URL, the base URL of the HIS gateway.")
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
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
