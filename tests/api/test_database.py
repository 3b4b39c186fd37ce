from datetime import UTC, datetime

import pytest
from sqlalchemy import text


def test_models_match_migrations(migrated_database):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from app.db import get_engine
    from app.models import Base
    from app.migrate import compare_type

    with get_engine().connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": compare_type})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_sqlite_pragmas(db_ready):
    from app.db import get_engine

    engine = get_engine()
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite-only settings")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() >= 5000


def test_timestamps_read_back_utc_aware(admin_api, project):
    from sqlalchemy import select

    from app.db import unit_of_work
    from app.projects.models import Project

    with unit_of_work(write=False) as db:
        created = db.scalar(select(Project.created_at).where(Project.slug == project))
    assert created.tzinfo is not None
    assert created.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - created).total_seconds()) < 60


def test_naive_timestamp_rejected(db_ready):
    from app.db import UTCDateTime

    with pytest.raises(ValueError, match="naive datetime"):
        UTCDateTime().process_bind_param(datetime(2026, 1, 1), None)
