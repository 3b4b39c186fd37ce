"""Database engine, sessions and the declarative base shared by every domain package."""

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import orjson
from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from app.config import get_settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_MS = 30_000


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp stored in UTC.

    SQLite keeps no offset, so values read back from it are marked UTC here. Naive values are
    rejected on write, because guessing their zone would shift them silently.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):  # type: ignore[override]
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware value")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect):  # type: ignore[override]
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class _WriterGate:
    """Let one write transaction at a time into SQLite within this process, waiting in a queue.

    SQLite's busy handler makes a blocked writer sleep and retry, for up to 100 ms at a time, so
    with many concurrent writers the database often sits unlocked while every writer sleeps.
    Waiting on a lock here instead hands the database to the next writer the moment the last
    one is done. Other processes (a second server worker, the job worker) still wait in SQLite.
    """

    def __init__(self, timeout_s: float) -> None:
        self._lock = threading.Lock()
        self._timeout_s = timeout_s
        self.holder = None

    def acquire(self, dbapi_connection) -> None:
        if not self._lock.acquire(timeout=self._timeout_s):
            raise sqlite3.OperationalError(
                f"database is locked: no write transaction finished within {self._timeout_s:.0f} s"
            )
        self.holder = dbapi_connection

    def release(self, dbapi_connection) -> None:
        if dbapi_connection is not None and dbapi_connection is self.holder:
            self.holder = None
            self._lock.release()


def _configure_sqlite(engine: Engine) -> None:
    gate = _WriterGate(SQLITE_BUSY_TIMEOUT_MS / 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Take transaction control from the driver so BEGIN IMMEDIATE can be issued below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # 32 MiB of page cache per connection (the default is 2 MiB): inserts into the unique
        # content-hash index touch random pages, which a small cache rereads from disk.
        cursor.execute("PRAGMA cache_size=-32768")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        # Write transactions take the lock up front: a deferred transaction that upgrades
        # to a writer later fails with "database is locked" instead of waiting.
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode == "IMMEDIATE":
            gate.acquire(connection.connection.dbapi_connection)
        connection.exec_driver_sql(f"BEGIN {mode}")

    # The session hands its connection back to the pool when its transaction ends.
    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection, _record) -> None:
        gate.release(dbapi_connection)

    @event.listens_for(engine, "invalidate")
    def _on_invalidate(dbapi_connection, _record, _exception) -> None:
        gate.release(dbapi_connection)


def _json_dumps(value) -> str:
    # orjson keeps non-ASCII as text and is several times faster than json.dumps on import.
    return orjson.dumps(value).decode()


def create_db_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            pool_size=8, max_overflow=24, json_serializer=_json_dumps, json_deserializer=orjson.loads,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(
        # Recycling replaces a per-checkout ping, which cost a round trip on every request.
        url, pool_size=10, max_overflow=30, pool_recycle=1800, json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
    )


@lru_cache
def get_engine() -> Engine:
    return create_db_engine(get_settings().resolved_database_url)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@lru_cache
def _sessionmakers() -> tuple[sessionmaker[Session], sessionmaker[Session]]:
    engine = get_engine()
    write_engine = engine.execution_options(sqlite_begin="IMMEDIATE") if is_sqlite(engine) else engine
    return (
        sessionmaker(bind=engine, expire_on_commit=False),
        sessionmaker(bind=write_engine, expire_on_commit=False),
    )


def new_session(*, write: bool = True) -> Session:
    read_maker, write_maker = _sessionmakers()
    return (write_maker if write else read_maker)()


@contextmanager
def unit_of_work(*, write: bool = True) -> Iterator[Session]:
    """Open a session that commits when the block ends and rolls back if it raises.

    Services only flush; this and the request dependency are where commits happen.
    """
    session = new_session(write=write)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def reset_engine_cache() -> None:
    """Forget the cached engine and session factories, for tests that change settings."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
    _sessionmakers.cache_clear()
