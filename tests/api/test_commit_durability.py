"""Leases may commit without waiting for the disk on PostgreSQL; submissions always wait."""

import pytest
from sqlalchemy import event, text

from app.db import get_engine, skip_commit_flush, unit_of_work


@pytest.fixture
def sent_sql(db_ready):
    """Every SQL statement sent while the test runs."""
    sent = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", record)
    yield sent
    event.remove(engine, "before_cursor_execute", record)


def _is_postgres() -> bool:
    return get_engine().dialect.name == "postgresql"


def _relaxed(statements: list[str]) -> bool:
    return any("synchronous_commit" in statement for statement in statements)


def test_setting_lasts_one_transaction(db_ready):
    if not _is_postgres():
        pytest.skip("synchronous_commit is a PostgreSQL setting")
    with unit_of_work() as db:
        skip_commit_flush(db)
        assert db.scalar(text("SHOW synchronous_commit")) == "off"
    with unit_of_work() as db:
        assert db.scalar(text("SHOW synchronous_commit")) == "on"


def test_sqlite_sends_nothing(sent_sql):
    if _is_postgres():
        pytest.skip("SQLite has no per-transaction commit durability")
    with unit_of_work() as db:
        skip_commit_flush(db)
    assert not _relaxed(sent_sql)


def test_lease_relaxed_submit_durable(admin_api, project, user_factory, sent_sql):
    from support import import_jsonl

    import_jsonl(admin_api, project, [{"instruction": "Say hi", "output": "Hi"}]).raise_for_status()
    annotator = user_factory("ann1")
    admin_api.put(f"/api/v1/projects/{project}/members/ann1", json={"role": "annotator"}).raise_for_status()

    sent_sql.clear()
    leased = annotator.post(f"/api/v1/projects/{project}/queue/next")
    assert leased.status_code == 200, leased.text
    assert _relaxed(sent_sql) == _is_postgres()

    sent_sql.clear()
    item_id = leased.json()["item"]["id"]
    submitted = annotator.post(
        f"/api/v1/projects/{project}/items/{item_id}/annotation",
        json={
            "version": 0, "response": "Hello 👋 你好 שלום", "submit_token": "durable-submit-1",
            "ratings": {"helpfulness": 5, "correctness": 5, "harmlessness": 5},
        },
    )
    assert submitted.status_code == 200, submitted.text
    assert not _relaxed(sent_sql)
