"""write_object: one INSERT or UPDATE per object, which leaves the object loaded and clean."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select

from app.auth.models import ApiToken, User
from app.db import get_engine, unit_of_work
from app.db_write import write_object


@pytest.fixture
def statements(db_ready):
    """The first word of each SQL statement sent while the test runs, transaction control left out."""
    sent = []

    def record(conn, cursor, statement, parameters, context, executemany):
        verb = statement.split()[0].upper()
        if verb not in ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"):
            sent.append(verb)

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", record)
    yield sent
    event.remove(engine, "before_cursor_execute", record)


def _new_user(name: str) -> User:
    return User(username=name, display_name=name, password_hash="x", role="annotator")


def test_insert_fills_database_defaults(statements):
    with unit_of_work() as db:
        user = _new_user("ada")
        statements.clear()

        write_object(db, user)

        assert statements == ["INSERT"]
        assert user.id is not None
        assert user.is_active is True
        assert user.created_at.tzinfo is not None
        assert user in db
        assert not db.new
        assert not db.dirty

    with unit_of_work(write=False) as db:
        stored = db.scalar(select(User).where(User.username == "ada"))
        assert stored.id == user.id
        assert stored.created_at == user.created_at


def test_update_writes_changed_columns_only(statements):
    with unit_of_work() as db:
        user = _new_user("bob")
        write_object(db, user)
    with unit_of_work() as db:
        user = db.scalar(select(User).where(User.username == "bob"))
        user.display_name = "Bob 🐢 ب 鲍勃"
        statements.clear()

        write_object(db, user)
        db.flush()

        assert statements == ["UPDATE"]
        assert not db.dirty

    with unit_of_work(write=False) as db:
        stored = db.scalar(select(User).where(User.username == "bob"))
        assert stored.display_name == "Bob 🐢 ب 鲍勃"
        assert stored.role == "annotator"


def test_unchanged_object_sends_nothing(statements):
    with unit_of_work() as db:
        user = _new_user("cy")
        write_object(db, user)
        statements.clear()

        write_object(db, user)

        assert statements == []


def test_pending_object_inserted_once(statements):
    with unit_of_work() as db:
        user = _new_user("dee")
        db.add(user)
        statements.clear()

        write_object(db, user)
        db.flush()

        assert statements == ["INSERT"]
    with unit_of_work(write=False) as db:
        assert db.scalars(select(User).where(User.username == "dee")).all() != []


def test_timestamp_update_keeps_utc(statements):
    later = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    with unit_of_work() as db:
        user = _new_user("eve")
        write_object(db, user)
        token = ApiToken(user_id=user.id, name="t", prefix="sft_abc", token_hash="h" * 64)
        write_object(db, token)
        token.last_used_at = later
        write_object(db, token)
        assert token.last_used_at == later

    with unit_of_work(write=False) as db:
        stored = db.scalar(select(ApiToken.last_used_at).where(ApiToken.token_hash == "h" * 64))
        assert stored == later
        assert stored - later == timedelta(0)


def test_update_of_deleted_row_raises(statements):
    from sqlalchemy import delete

    with unit_of_work() as db:
        user = _new_user("fay")
        write_object(db, user)
    with pytest.raises(RuntimeError, match="no longer exists"), unit_of_work() as db:
        user = db.scalar(select(User).where(User.username == "fay"))
        db.execute(delete(User.__table__).where(User.__table__.c.id == user.id))
        user.display_name = "gone"
        write_object(db, user)


def test_update_with_onupdate_of_deleted_row_raises(statements, admin_api, project):
    from sqlalchemy import delete

    from app.annotation.models import Assignment
    from support import import_jsonl

    import_jsonl(admin_api, project, [{"instruction": "Say hi", "output": "Hi"}]).raise_for_status()
    leased = admin_api.post(f"/api/v1/projects/{project}/queue/next")
    assert leased.status_code == 200, leased.text

    # Assignment.updated_at has an onupdate, so this UPDATE returns a row when the row exists.
    with pytest.raises(RuntimeError, match="no longer exists"), unit_of_work() as db:
        assignment = db.scalar(select(Assignment))
        db.execute(delete(Assignment.__table__).where(Assignment.__table__.c.id == assignment.id))
        assignment.status = "skipped"
        write_object(db, assignment)
