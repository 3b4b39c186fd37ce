"""Shared fixtures: a migrated database (SQLite by default, PostgreSQL when asked), the app, users.

Set SFTDESK_TEST_DATABASE=postgres to run against PostgreSQL on 127.0.0.1:5432; the tests create
a database of their own and drop it at the end. Each test starts from empty tables.
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from support import Api, make_user

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
POSTGRES_ADMIN_URL = os.environ.get(
    "SFTDESK_TEST_POSTGRES_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _use_postgres() -> bool:
    return os.environ.get("SFTDESK_TEST_DATABASE", "sqlite") == "postgres"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> Iterator[str]:
    if not _use_postgres():
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
        return

    name = f"sftdesk_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        from app.db import reset_engine_cache

        reset_engine_cache()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def migrated_database(database_url, tmp_path_factory) -> str:
    os.environ["SFTDESK_DATABASE_URL"] = database_url
    os.environ["SFTDESK_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    os.environ["SFTDESK_ENVIRONMENT"] = "test"
    from app.config import get_settings
    from app.db import reset_engine_cache
    from app.migrate import upgrade_to_head

    get_settings.cache_clear()
    reset_engine_cache()
    upgrade_to_head()
    return database_url


def _truncate_all() -> None:
    from app.db import get_engine
    from app.models import Base

    engine = get_engine()
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(text(f'DELETE FROM "{table}"'))


@pytest.fixture
def db_ready(migrated_database, tmp_path, monkeypatch) -> Iterator[None]:
    """An empty migrated database and a fresh data directory for one test."""
    from app.config import get_settings

    monkeypatch.setenv("SFTDESK_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    _truncate_all()
    yield
    get_settings.cache_clear()


@pytest.fixture
def settings(db_ready):
    from app.config import get_settings

    return get_settings()


@pytest.fixture
def app(db_ready):
    from app.main import create_app

    return create_app()


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


@pytest.fixture
def admin_api(client) -> Api:
    _, token = make_user("admin", role="admin")
    return Api(client, token, "admin")


@pytest.fixture
def user_factory(client):
    def create(username: str, role: str = "annotator") -> Api:
        _, token = make_user(username, role=role)
        return Api(client, token, username)

    return create


@pytest.fixture
def project(admin_api) -> str:
    response = admin_api.post("/api/v1/projects", json={"slug": "demo", "name": "Demo"})
    assert response.status_code == 201, response.text
    return "demo"


def pytest_collection_modifyitems(config, items):
    # Training tests load torch once and share a tiny model, so they run in one worker.
    for item in items:
        if item.get_closest_marker("training") is not None:
            item.add_marker(pytest.mark.xdist_group("training"))
        if item.get_closest_marker("browser") is not None:
            item.add_marker(pytest.mark.xdist_group("browser"))
