"""Claiming: every job goes to exactly one claimer, with threads and with separate processes."""

import multiprocessing
import os
import threading
from collections import Counter
from datetime import timedelta

import pytest

from app.db import utcnow
from app.jobs import queue

JOBS = 40


def _claim_until_empty(owner: str, lease_s: float = 60) -> list[int]:
    claimed = []
    while True:
        job = queue.claim_next(owner, lease_s=lease_s)
        if job is None:
            return claimed
        claimed.append(job.lease.job_id)


def test_claim_marks_job_running(add_job, load_job) -> None:
    job_id = add_job("finetune", params={"base_model": "tiny"})

    claimed = queue.claim_next("worker-a", lease_s=30)

    stored = load_job(job_id)
    assert claimed is not None
    assert claimed.lease.job_id == job_id
    assert claimed.lease.attempt == 1
    assert claimed.params == {"base_model": "tiny"}
    assert stored.status == "running"
    assert stored.lease_owner == "worker-a"
    assert stored.attempts == 1
    assert stored.started_at is not None
    assert 25 <= (stored.lease_expires_at - utcnow()).total_seconds() <= 30


def test_claim_takes_oldest_ready_job(add_job) -> None:
    later = add_job(run_after=utcnow() + timedelta(hours=1))
    first = add_job()
    second = add_job()

    order = [queue.claim_next("w", lease_s=30).lease.job_id for _ in range(2)]

    assert order == [first, second]
    assert queue.claim_next("w", lease_s=30) is None
    assert later not in order


def test_claim_skips_finished_and_cancelled(add_job) -> None:
    add_job(status="succeeded")
    add_job(status="cancelled", cancel_requested=True)

    assert queue.claim_next("w", lease_s=30) is None
    assert not queue.has_claimable_job()


def test_claim_filters_by_kind(add_job) -> None:
    add_job("finetune")
    suggest_id = add_job("suggest")

    claimed = queue.claim_next("w", lease_s=30, kinds=["suggest"])

    assert claimed.lease.job_id == suggest_id
    assert queue.claim_next("w", lease_s=30, kinds=["suggest"]) is None


def test_threads_claim_each_job_once(add_job, load_job) -> None:
    job_ids = [add_job() for _ in range(JOBS)]
    results: dict[str, list[int]] = {}
    barrier = threading.Barrier(8)

    def claimer(name: str) -> None:
        barrier.wait()
        results[name] = _claim_until_empty(name)

    threads = [threading.Thread(target=claimer, args=(f"thread-{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    claims = Counter(job_id for claimed in results.values() for job_id in claimed)
    assert sorted(claims) == sorted(job_ids)
    assert set(claims.values()) == {1}
    for job_id in job_ids:
        stored = load_job(job_id)
        assert stored.attempts == 1
        assert job_id in results[stored.lease_owner]


def _process_claimer(database_url: str, data_dir: str, name: str, start, output) -> None:
    os.environ["SFTDESK_DATABASE_URL"] = database_url
    os.environ["SFTDESK_DATA_DIR"] = data_dir
    os.environ["SFTDESK_ENVIRONMENT"] = "test"
    start.wait()
    output.put((name, _claim_until_empty(name)))


def test_processes_claim_each_job_once(add_job, load_job, migrated_database, settings) -> None:
    job_ids = [add_job() for _ in range(JOBS)]
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    output = context.Queue()
    processes = [
        context.Process(
            target=_process_claimer,
            args=(migrated_database, str(settings.data_dir), f"process-{n}", start, output),
        )
        for n in range(4)
    ]
    for process in processes:
        process.start()
    start.set()
    results = dict(output.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=60)

    claims = Counter(job_id for claimed in results.values() for job_id in claimed)
    assert all(process.exitcode == 0 for process in processes)
    assert sorted(claims) == sorted(job_ids)
    assert set(claims.values()) == {1}
    for job_id in job_ids:
        assert job_id in results[load_job(job_id).lease_owner]


@pytest.mark.parametrize("attempt, expected", [(1, 10.0), (2, 20.0), (3, 40.0), (20, queue.MAX_RETRY_DELAY_S)])
def test_retry_delay_doubles(attempt, expected) -> None:
    assert queue.retry_delay_s(attempt, 10.0) == expected


def test_append_log_keeps_newest_lines() -> None:
    text = ""
    for number in range(5000):
        text = queue.append_log(text, f"line {number}")

    assert len(text) <= queue.MAX_LOG_CHARS + len("[older lines removed]\n")
    assert text.startswith("[older lines removed]\n")
    assert text.rstrip().endswith("line 4999")
    assert "line 0\n" not in text
