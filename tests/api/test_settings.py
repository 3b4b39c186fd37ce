import subprocess
import sys

import pytest
from pydantic import ValidationError


def test_production_rejects_placeholder_secret(monkeypatch):
    from app.config import Settings

    monkeypatch.setenv("SFTDESK_ENVIRONMENT", "production")
    monkeypatch.setenv("SFTDESK_SECRET_KEY", "change-me")
    with pytest.raises(ValidationError) as error:
        Settings()
    assert "SFTDESK_SECRET_KEY" in str(error.value)


def test_production_rejects_missing_secret(monkeypatch):
    from app.config import Settings

    monkeypatch.setenv("SFTDESK_ENVIRONMENT", "production")
    monkeypatch.delenv("SFTDESK_SECRET_KEY", raising=False)
    with pytest.raises(ValidationError):
        Settings()


def test_production_accepts_real_secret(monkeypatch):
    from app.config import Settings

    monkeypatch.setenv("SFTDESK_ENVIRONMENT", "production")
    monkeypatch.setenv("SFTDESK_SECRET_KEY", "x" * 48)
    assert Settings().secret_key == "x" * 48


def test_cli_refuses_to_start_without_secret(tmp_path):
    env = {"SFTDESK_ENVIRONMENT": "production", "SFTDESK_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"], env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "SFTDESK_SECRET_KEY is missing or a placeholder" in result.stderr


def test_postgres_pool_uses_configured_size(monkeypatch):
    from app.config import get_settings
    from app.db import create_db_engine

    monkeypatch.setenv("SFTDESK_DATABASE_POOL_SIZE", "7")
    get_settings.cache_clear()
    try:
        engine = create_db_engine("postgresql+psycopg://nobody@127.0.0.1:5432/not_connected")
        assert engine.pool.size() == 7
        engine.dispose()
    finally:
        get_settings.cache_clear()


def test_pool_size_must_be_positive(monkeypatch):
    from app.config import Settings

    monkeypatch.setenv("SFTDESK_DATABASE_POOL_SIZE", "0")
    with pytest.raises(ValidationError) as error:
        Settings()
    assert "database_pool_size" in str(error.value)
