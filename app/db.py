"""Database engine, sessions and the declarative base shared by every domain package."""

import asyncio
import os
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

import orjson
from sqlalchemy import DateTime, Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from app.config import get_settings

try:
    import fcntl
except ImportError:  # Windows: processes fall back to SQLite's busy handler.
    fcntl = None

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_MS = 30_000

T = TypeVar("T")


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


class _Waiter:
    """One writer waiting for the gate: who will hold it, and how to wake them."""

    __slots__ = ("abandoned", "owner", "wake")

    def __init__(self, owner: object, wake: Callable[[], None]) -> None:
        self.owner = owner
        self.wake = wake
        self.abandoned = False


class WriterTurn:
    """A request's place at the SQLite writer gate, taken on the event loop before any worker thread runs.

    The request's first write transaction takes the gate over from the turn when it begins.
    """

    __slots__ = ("gate", "spent")

    def __init__(self, gate: "_WriterGate") -> None:
        self.gate = gate
        self.spent = False


# The writer turn of the request being handled; worker threads see it through the copied context.
_REQUEST_TURN: ContextVar[WriterTurn | None] = ContextVar("sftdesk_writer_turn", default=None)
# True while a request runs its database work on the event loop (run_in_turn).
_ON_EVENT_LOOP: ContextVar[bool] = ContextVar("sftdesk_on_event_loop", default=False)


class _FileLock:
    """An exclusive lock on a file beside the database, which every process that writes to it takes.

    The writer gate lets one thread of a process at a time into SQLite, and this lock lets one
    process at a time. A second server worker or the job worker then gets the database as soon as it
    is free, instead of after a busy-handler sleep of up to 100 ms. Waiting polls every millisecond at
    most, so it can give up after a time-out like SQLite's own busy handler.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None
        self._pid = 0

    def _descriptor(self) -> int:
        # A forked child shares its parent's open file, lock included, so it opens a file of its own.
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
            self._pid = os.getpid()
        return self._fd

    def _try_acquire(self) -> bool:
        try:
            fcntl.flock(self._descriptor(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def acquire(self, timeout_s: float) -> bool:
        """Take the lock; return False if it stayed taken for timeout_s."""
        deadline = time.monotonic() + timeout_s
        pause = 0.00005
        while not self._try_acquire():
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.001)
        return True

    async def acquire_async(self, timeout_s: float) -> bool:
        """Take the lock without blocking the event loop; return False if it stayed taken for timeout_s."""
        deadline = time.monotonic() + timeout_s
        pause = 0.00005
        while not self._try_acquire():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.001)
        return True

    def release(self) -> None:
        fcntl.flock(self._descriptor(), fcntl.LOCK_UN)


class _WriterGate:
    """Let one write transaction at a time into SQLite within this process, first come first served.

    SQLite's busy handler makes a blocked writer sleep and retry, for up to 100 ms at a time, so
    with many concurrent writers the database often sits unlocked while every writer sleeps.
    Waiting here instead hands the database to the next writer the moment the last one is done.
    With a file lock (any SQLite database on disk) the holder also takes it, so other processes
    (a second server worker, the job worker) take turns with this one.

    Threads wait in acquire(). Requests wait in acquire_turn(), on the event loop, because a request
    waiting in a worker thread would occupy one of the threadpool's 40 threads. Once every thread
    waited that way, the writer holding the gate would get no thread to finish its request in.
    A turn also takes the file lock on the event loop, so a request with a turn begins its
    write transaction without waiting (see turn_ready).
    """

    def __init__(self, timeout_s: float, file_lock: _FileLock | None = None) -> None:
        self._timeout_s = timeout_s
        self._file_lock = file_lock
        # Whether the current holder took the file lock. A turn hands it over with the gate.
        self._file_held = False
        self._mutex = threading.Lock()
        self._holder: object | None = None
        self._queue: deque[_Waiter] = deque()

    def _locked_error(self) -> sqlite3.OperationalError:
        return sqlite3.OperationalError(
            f"database is locked: no write transaction finished within {self._timeout_s:.0f} s"
        )

    def _take_or_wait(self, owner: object, wake: Callable[[], None]) -> _Waiter | None:
        """Take the gate if it is free and return None; otherwise join the queue."""
        with self._mutex:
            if self._holder is None:
                self._holder = owner
                return None
            waiter = _Waiter(owner, wake)
            self._queue.append(waiter)
            return waiter

    def _leave_queue(self, waiter: _Waiter) -> bool:
        """Leave the queue; return True if the gate was handed over meanwhile, so the caller now owns it."""
        with self._mutex:
            waiter.abandoned = True
            return self._holder is waiter.owner

    def acquire(self, dbapi_connection) -> None:
        """Make the connection the holder, after its request's turn or after the writers queued before it."""
        self._enter(dbapi_connection)
        if self._file_lock is not None and not self._file_held:
            if not self._file_lock.acquire(self._timeout_s):
                self.release(dbapi_connection)
                raise self._locked_error()
            self._file_held = True

    def _enter(self, dbapi_connection) -> None:
        turn = _REQUEST_TURN.get()
        if turn is not None and turn.gate is self and not turn.spent and self.hand_over(turn, dbapi_connection):
            return
        granted = threading.Event()
        waiter = self._take_or_wait(dbapi_connection, granted.set)
        if waiter is None:
            return
        if _ON_EVENT_LOOP.get():
            # Waiting would block the event loop, which the holder may need in order to finish.
            if not self._leave_queue(waiter):
                raise RuntimeError(
                    "a second write transaction began in a request running on the event loop: "
                    "mark the endpoint short_write only if it uses one write transaction"
                )
            return
        if granted.wait(self._timeout_s):
            return
        if not self._leave_queue(waiter):
            raise self._locked_error()

    async def acquire_turn(self) -> WriterTurn:
        turn = WriterTurn(self)
        loop = asyncio.get_running_loop()
        granted = loop.create_future()

        def wake() -> None:
            loop.call_soon_threadsafe(lambda: granted.done() or granted.set_result(None))

        waiter = self._take_or_wait(turn, wake)
        if waiter is not None:
            try:
                async with asyncio.timeout(self._timeout_s):
                    await granted
            except BaseException as error:
                if self._leave_queue(waiter):
                    self.release(turn)
                if isinstance(error, TimeoutError):
                    raise self._locked_error() from None
                raise
        if self._file_lock is not None:
            try:
                locked = await self._file_lock.acquire_async(self._timeout_s)
            except BaseException:
                self.release(turn)
                raise
            if not locked:
                self.release(turn)
                raise self._locked_error()
            self._file_held = True
        return turn

    def hand_over(self, turn: WriterTurn, dbapi_connection) -> bool:
        """Pass the gate from a request's turn to the connection of its first write transaction."""
        with self._mutex:
            turn.spent = True
            if self._holder is not turn:
                return False
            self._holder = dbapi_connection
            return True

    def release(self, owner: object) -> None:
        """Hand the gate to the next writer in the queue; a no-op unless owner is the current holder."""
        if isinstance(owner, WriterTurn):
            owner.spent = True
        with self._mutex:
            if owner is None or self._holder is not owner:
                return
            if self._file_held:
                self._file_lock.release()
                self._file_held = False
            self._holder = None
            while self._queue:
                waiter = self._queue.popleft()
                if not waiter.abandoned:
                    self._holder = waiter.owner
                    waiter.wake()
                    return


_GATES: "weakref.WeakKeyDictionary[Engine, _WriterGate]" = weakref.WeakKeyDictionary()



def _configure_sqlite(engine: Engine) -> None:
    database = engine.url.database
    on_disk = database and database != ":memory:" and not database.startswith("file:")
    file_lock = _FileLock(Path(f"{database}.writer-lock")) if on_disk and fcntl is not None else None
    gate = _GATES[engine] = _WriterGate(SQLITE_BUSY_TIMEOUT_MS / 1000, file_lock)

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
        url, pool_size=get_settings().database_pool_size, max_overflow=16, pool_recycle=1800,
        json_serializer=_json_dumps, json_deserializer=orjson.loads,
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


def end_session(session: Session, *, commit: bool) -> None:
    """Commit (or roll back) the session's transaction and close it; roll back if the commit fails."""
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def unit_of_work(*, write: bool = True) -> Iterator[Session]:
    """Open a session that commits when the block ends and rolls back if it raises.

    Services only flush; this and the request dependency are where commits happen.
    """
    session = new_session(write=write)
    try:
        yield session
    except BaseException:
        end_session(session, commit=False)
        raise
    end_session(session, commit=True)


@asynccontextmanager
async def writer_turn(*, write: bool) -> AsyncIterator[None]:
    """Wait on the event loop for the request's turn to write to SQLite; a no-op for reads and PostgreSQL.

    The turn passes to the request's first write transaction when it begins, and from there to
    the next writer when that transaction ends. A turn never used is released when the block ends.
    """
    gate = _GATES.get(get_engine()) if write else None
    if gate is None:
        yield
        return
    turn = await gate.acquire_turn()
    _REQUEST_TURN.set(turn)
    try:
        yield
    finally:
        gate.release(turn)


def skip_commit_flush(db: Session) -> None:
    """On PostgreSQL, let this transaction commit without waiting for its WAL to reach disk.

    Use it only for transactions whose loss in a database crash is harmless, such as an item lease
    that the annotator can take again. The commit then waits for no fsync, which on a slow disk was
    most of a lease's worst latency. PostgreSQL's documentation of synchronous_commit = off says a
    crash within 3 x wal_writer_delay (600 ms by default) after such a commit may lose it but never
    corrupts the database.
    """
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SELECT set_config('synchronous_commit', 'off', true)"))


def run_in_turn(function: Callable[..., T], *args: object) -> T:
    """Run function on the event loop, where the request's write transaction uses its writer turn.

    A second write transaction in function raises RuntimeError instead of waiting at the gate.
    """
    token = _ON_EVENT_LOOP.set(True)
    try:
        return function(*args)
    finally:
        _ON_EVENT_LOOP.reset(token)


def turn_ready() -> bool:
    """Return whether this request has an unused SQLite writer turn.

    Its first write transaction then begins without waiting, because the turn owns the gate of
    this process and the file lock that other processes take.

    NOTE: a program that writes to the database without the file lock (the sqlite3 shell, say)
    still makes the transaction wait in SQLite's busy handler, which blocks a short_write
    request's event loop for up to SQLITE_BUSY_TIMEOUT_MS.
    """
    turn = _REQUEST_TURN.get()
    return turn is not None and not turn.spent


def reset_engine_cache() -> None:
    """Forget the cached engine and session factories, for tests that change settings."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
    _sessionmakers.cache_clear()
