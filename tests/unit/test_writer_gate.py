"""The SQLite writer gate: first come first served, for threads and for requests on the event loop."""

import asyncio
import sqlite3
import threading
import time

import pytest

from app.db import _REQUEST_TURN, _FileLock, _WriterGate, run_in_turn


class Connection:
    """Stands in for a DBAPI connection: the gate only compares identities."""


def _acquire_in_thread(gate: _WriterGate, owner, order: list) -> threading.Thread:
    def run() -> None:
        gate.acquire(owner)
        order.append(owner)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _wait_for_queue(gate: _WriterGate, length: int) -> None:
    deadline = time.monotonic() + 5
    while len(gate._queue) < length:
        assert time.monotonic() < deadline, "waiters did not queue"
        time.sleep(0.005)


def _run_on_own_loop(scenario) -> None:
    """Run the coroutine function on a new event loop in a new thread.

    Playwright's sync API, used by the browser tests in the same pytest worker, leaves an event
    loop running in the main thread, where asyncio.run() raises.
    """
    errors = []

    def run() -> None:
        try:
            asyncio.run(scenario())
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the scenario did not finish within 30 s"
    if errors:
        raise errors[0]


def test_threads_get_the_gate_in_arrival_order():
    gate = _WriterGate(timeout_s=5)
    first, second, third = Connection(), Connection(), Connection()
    gate.acquire(first)
    order = []
    waiting = _acquire_in_thread(gate, second, order)
    _wait_for_queue(gate, 1)
    last = _acquire_in_thread(gate, third, order)
    _wait_for_queue(gate, 2)

    gate.release(first)
    waiting.join(timeout=5)
    assert order == [second]
    gate.release(second)
    last.join(timeout=5)
    assert order == [second, third]


def test_release_by_a_non_holder_changes_nothing():
    gate = _WriterGate(timeout_s=0.2)
    holder, other = Connection(), Connection()
    gate.acquire(holder)
    gate.release(other)
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        gate.acquire(other)


def test_thread_timeout_leaves_queue():
    gate = _WriterGate(timeout_s=0.1)
    holder, impatient, patient = Connection(), Connection(), Connection()
    gate.acquire(holder)
    with pytest.raises(sqlite3.OperationalError, match="no write transaction finished within"):
        gate.acquire(impatient)

    order = []
    gate._timeout_s = 5
    waiting = _acquire_in_thread(gate, patient, order)
    _wait_for_queue(gate, 2)
    gate.release(holder)
    waiting.join(timeout=5)
    assert order == [patient]


def test_request_turn_passes_to_first_transaction():
    gate = _WriterGate(timeout_s=5)
    holder, request_connection = Connection(), Connection()
    gate.acquire(holder)

    async def request() -> None:
        waiting = asyncio.ensure_future(gate.acquire_turn())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        # The holder finishes in a worker thread while the request waits on the loop.
        await asyncio.to_thread(gate.release, holder)
        turn = await asyncio.wait_for(waiting, 5)
        _REQUEST_TURN.set(turn)
        # The request's first write transaction begins in a worker thread that inherits the turn.
        await asyncio.to_thread(gate.acquire, request_connection)
        assert gate._holder is request_connection
        assert turn.spent
        gate.release(turn)
        assert gate._holder is request_connection
        gate.release(request_connection)
        assert gate._holder is None

    _run_on_own_loop(request)


def test_cancelled_request_frees_gate():
    gate = _WriterGate(timeout_s=5)
    holder, next_writer = Connection(), Connection()
    gate.acquire(holder)

    async def scenario() -> None:
        waiting = asyncio.ensure_future(gate.acquire_turn())
        await asyncio.sleep(0.05)
        order = []
        thread = _acquire_in_thread(gate, next_writer, order)
        await asyncio.to_thread(_wait_for_queue, gate, 2)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        gate.release(holder)
        await asyncio.to_thread(thread.join, 5)
        assert order == [next_writer]

    _run_on_own_loop(scenario)


def test_unused_turn_is_released():
    gate = _WriterGate(timeout_s=0.5)

    async def scenario() -> None:
        turn = await gate.acquire_turn()
        gate.release(turn)
        second = await gate.acquire_turn()
        gate.release(second)

    _run_on_own_loop(scenario)
    gate.acquire(Connection())


def test_request_wait_times_out():
    gate = _WriterGate(timeout_s=0.1)
    gate.acquire(Connection())

    async def scenario() -> None:
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            await gate.acquire_turn()

    _run_on_own_loop(scenario)
    assert len(gate._queue) == 1
    assert gate._queue[0].abandoned


def test_file_lock_excludes_second_holder(tmp_path):
    path = tmp_path / "db.sqlite3.writer-lock"
    first, second = _FileLock(path), _FileLock(path)
    assert first.acquire(timeout_s=1)
    assert not second.acquire(timeout_s=0.05)

    released = threading.Timer(0.1, first.release)
    released.start()
    assert second.acquire(timeout_s=5)
    released.join()
    second.release()


def test_gate_releases_file_lock(tmp_path):
    path = tmp_path / "db.sqlite3.writer-lock"
    gate = _WriterGate(timeout_s=1, file_lock=_FileLock(path))
    other_process = _FileLock(path)
    holder = Connection()
    gate.acquire(holder)
    assert not other_process.acquire(timeout_s=0.05)
    gate.release(holder)
    assert other_process.acquire(timeout_s=0.05)


def test_file_lock_timeout_frees_gate(tmp_path):
    path = tmp_path / "db.sqlite3.writer-lock"
    gate = _WriterGate(timeout_s=0.1, file_lock=_FileLock(path))
    other_process = _FileLock(path)
    assert other_process.acquire(timeout_s=1)
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        gate.acquire(Connection())
    other_process.release()
    gate.acquire(Connection())


def test_turn_takes_file_lock_without_blocking_loop(tmp_path):
    path = tmp_path / "db.sqlite3.writer-lock"
    gate = _WriterGate(timeout_s=5, file_lock=_FileLock(path))
    other_process = _FileLock(path)
    assert other_process.acquire(timeout_s=1)
    request_connection = Connection()

    async def scenario() -> None:
        waiting = asyncio.ensure_future(gate.acquire_turn())
        # The loop keeps running other work while the turn waits for the file lock.
        ticks = 0
        for _ in range(10):
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 10
        assert not waiting.done()

        other_process.release()
        turn = await asyncio.wait_for(waiting, 5)
        _REQUEST_TURN.set(turn)
        assert not other_process.acquire(timeout_s=0.05)
        # The connection finds the file lock held for it and begins at once.
        run_in_turn(gate.acquire, request_connection)
        assert gate._holder is request_connection
        gate.release(request_connection)
        assert other_process.acquire(timeout_s=0.05)

    _run_on_own_loop(scenario)


def test_turn_file_lock_timeout_frees_gate(tmp_path):
    path = tmp_path / "db.sqlite3.writer-lock"
    gate = _WriterGate(timeout_s=0.1, file_lock=_FileLock(path))
    other_process = _FileLock(path)
    assert other_process.acquire(timeout_s=1)

    async def scenario() -> None:
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            await gate.acquire_turn()

    _run_on_own_loop(scenario)
    assert gate._holder is None
    other_process.release()


def test_second_transaction_on_loop_raises():
    gate = _WriterGate(timeout_s=5)
    first, second = Connection(), Connection()

    async def scenario() -> None:
        turn = await gate.acquire_turn()
        _REQUEST_TURN.set(turn)
        run_in_turn(gate.acquire, first)
        # Waiting for the gate on the loop would deadlock, so the second transaction fails at once.
        with pytest.raises(RuntimeError, match="second write transaction"):
            run_in_turn(gate.acquire, second)
        assert gate._holder is first
        assert not gate._queue or gate._queue[0].abandoned
        gate.release(first)

    _run_on_own_loop(scenario)
    assert gate._holder is None
