"""Settings come from the environment and an optional TOML file, and refuse unsafe combinations."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bff.settings import Settings


def test_defaults_run_a_complete_hospital_on_sqlite_with_sandboxes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "REDIS_URL", "BFF_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.database_url.startswith("sqlite+aiosqlite")
    assert settings.redis_url is None
    assert (settings.his.mode, settings.credit.mode) == ("sandbox", "sandbox")
    assert settings.loads_demo_data and not settings.signatures_required


def test_production_loads_no_demo_hospital_and_needs_signatures() -> None:
    production = Settings(environment="production", callback_secret="s" * 20)
    assert not production.loads_demo_data and production.signatures_required


def test_a_toml_file_sets_values_and_the_environment_overrides_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "hospital.toml"
    config.write_text('geofence_radius_m = 500\ncancel_cutoff_minutes = 30\n[his]\nmode = "http"\nurl = "http://his:8080"\n')
    monkeypatch.setenv("BFF_CONFIG", str(config))
    monkeypatch.setenv("GEOFENCE_RADIUS_M", "800")
    settings = Settings()
    assert settings.geofence_radius_m == 800
    assert settings.cancel_cutoff_minutes == 30
    assert (settings.his.mode, settings.his.url) == ("http", "http://his:8080")


def test_nested_settings_come_from_double_underscore_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIS__MODE", "http")
    monkeypatch.setenv("HIS__URL", "http://127.0.0.1:9000/sandbox/his")
    assert Settings().his.url == "http://127.0.0.1:9000/sandbox/his"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"environment": "production"}, "CALLBACK_SECRET"),
        ({"his": {"mode": "http"}}, "HIS__URL"),
        ({"credit": {"mode": "http"}}, "credit platform"),
        ({"environment": "production", "callback_secret": "s" * 20, "load_demo_data": True}, "passwords are public"),
    ],
)
def test_unsafe_or_incomplete_settings_are_refused_with_what_to_set(values: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError, match=message):
        Settings(**values)
