"""The worker loop with stand-in handlers: results, failures, retries, cancellation, shutdown, lost leases."""

import threading
import time

from sqlalchemy import func, select, update

from app.db import unit_of_work
from app.jobs.context import JobError, JobOutcome
from app.jobs.models import Job
from app.jobs.worker import Worker
from app.runs.models import Run

TICK_S = 0.1


def _worker(handler, **options) -> Worker:
    handlers = {kind: handler for kind in ("finetune", "evaluate", "suggest")}
    return Worker(handlers=handlers, tick_s=TICK_S, worker_id=options.pop("worker_id", "test-worker"), **options)


def _wait_for(predicate, timeout_s: float = 10.0) -> float:
    """Poll until predicate() is true and return the seconds it took."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout_s, "condition not reached in time"
        time.sleep(0.05)
    return time.monotonic() - start


def _run_count() -> int:
    with unit_of_work(write=False) as db:
        return db.scalar(select(func.count()).select_from(Run))


def test_worker_records_success(add_job, load_job, project_id) -> None:
    job_id = add_job()

    def handler(context):
        context.report("training", 2, 4, loss=1.25)
        context.log("halfway there")

        def write(db):
            run = Run(project_id=project_id, job_id=context.job_id, kind="finetune", base_model="tiny")
            db.add(run)
            db.flush()
            return {"run_id": run.id}

        return JobOutcome(result={"train_loss": 1.25}, write=write)

    ran = _worker(handler).run(exit_when_idle=True)

    stored = load_job(job_id)
    assert ran == 1
    assert stored.status == "succeeded"
    assert stored.result["train_loss"] == 1.25
    assert isinstance(stored.result["run_id"], int)
    assert stored.progress["step"] == 2
    assert stored.progress["loss"] == 1.25
    assert "halfway there" in stored.log
    assert "attempt 1 of 3 started" in stored.log
    assert stored.log.rstrip().endswith("finished")
    assert _run_count() == 1


def test_job_error_fails_without_retry(add_job, load_job) -> None:
    job_id = add_job(max_attempts=3)

    def handler(context):
        raise JobError("snapshot 7 is gone")

    _worker(handler).run(exit_when_idle=True)

    stored = load_job(job_id)
    assert stored.status == "failed"
    assert stored.attempts == 1
    assert stored.error == "snapshot 7 is gone"
    assert "failed: snapshot 7 is gone" in stored.log


def test_unexpected_error_is_retried(add_job, load_job) -> None:
    job_id = add_job(max_attempts=2)
    calls = []

    def handler(context):
        calls.append(context.attempt)
        raise RuntimeError("out of memory")

    _worker(handler, retry_base_s=0).run(exit_when_idle=True)

    stored = load_job(job_id)
    assert calls == [1, 2]
    assert stored.status == "failed"
    assert stored.attempts == 2
    assert stored.error == "RuntimeError: out of memory"
    assert stored.log.count("failed: RuntimeError: out of memory") == 2


def test_retry_waits_for_backoff(add_job, load_job) -> None:
    job_id = add_job(max_attempts=3)

    def handler(context):
        raise RuntimeError("flaky")

    ran = _worker(handler, retry_base_s=60).run(exit_when_idle=True)

    stored = load_job(job_id)
    assert ran == 1
    assert stored.status == "queued"
    assert stored.attempts == 1
    assert (stored.run_after - stored.created_at).total_seconds() >= 59
    assert "retry after" in stored.log


def test_cancel_stops_running_job_within_seconds(add_job, load_job, admin_api, project) -> None:
    job_id = add_job()
    started = threading.Event()

    def handler(context):
        started.set()
        while True:
            context.raise_if_stopped()
            time.sleep(0.02)

    worker = _worker(handler)
    thread = threading.Thread(target=worker.run, kwargs={"max_jobs": 1})
    thread.start()
    assert started.wait(10)

    response = admin_api.post(f"/api/v1/projects/{project}/jobs/{job_id}/cancel")
    elapsed = _wait_for(lambda: load_job(job_id).status == "cancelled", timeout_s=5)
    thread.join(timeout=5)

    stored = load_job(job_id)
    assert response.status_code == 200, response.text
    assert response.json()["cancel_requested"] is True
    assert elapsed < 3
    assert stored.status == "cancelled"
    assert stored.finished_at is not None
    assert not thread.is_alive()


def test_progress_visible_while_running(add_job, load_job) -> None:
    job_id = add_job()
    release = threading.Event()

    def handler(context):
        context.report("training", 7, 20, loss=0.5)
        context.log("step 7/20")
        release.wait(10)
        return JobOutcome()

    thread = threading.Thread(target=_worker(handler).run, kwargs={"max_jobs": 1})
    thread.start()
    _wait_for(lambda: (load_job(job_id).progress or {}).get("step") == 7)
    running = load_job(job_id)
    release.set()
    thread.join(timeout=10)

    assert running.status == "running"
    assert running.progress["total_steps"] == 20
    assert running.progress["phase"] == "training"
    assert running.progress["eta_seconds"] is not None
    assert "step 7/20" in running.log
    assert load_job(job_id).status == "succeeded"


def test_shutdown_returns_job_to_queue(add_job, load_job) -> None:
    job_id = add_job()
    started = threading.Event()

    def handler(context):
        started.set()
        while not context.should_stop():
            time.sleep(0.02)
        context.raise_if_stopped()

    worker = _worker(handler)
    thread = threading.Thread(target=worker.run)
    thread.start()
    assert started.wait(10)
    worker.request_shutdown()
    thread.join(timeout=10)

    stored = load_job(job_id)
    assert not thread.is_alive()
    assert stored.status == "queued"
    assert stored.attempts == 0
    assert stored.lease_owner is None
    assert "job returned to the queue" in stored.log


def test_lost_lease_discards_result(add_job, load_job, project_id) -> None:
    job_id = add_job()

    def handler(context):
        # Another worker took the job over while this one was busy.
        with unit_of_work() as db:
            db.execute(update(Job).where(Job.id == context.job_id).values(lease_owner="other-worker"))

        def write(db):
            db.add(Run(project_id=project_id, kind="finetune", base_model="tiny"))

        return JobOutcome(result={"ignored": True}, write=write)

    _worker(handler).run(exit_when_idle=True)

    stored = load_job(job_id)
    assert stored.status == "running"
    assert stored.lease_owner == "other-worker"
    assert stored.result == {}
    assert _run_count() == 0


def test_two_workers_share_queue(add_job, load_job) -> None:
    job_ids = [add_job() for _ in range(6)]
    seen: list[tuple[str, int]] = []
    lock = threading.Lock()

    def handler(context):
        with lock:
            seen.append((context.lease.owner, context.job_id))
        time.sleep(0.05)
        return JobOutcome()

    workers = [_worker(handler, worker_id=f"worker-{n}") for n in range(2)]
    threads = [threading.Thread(target=worker.run, kwargs={"exit_when_idle": True}) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(job_id for _, job_id in seen) == job_ids
    assert all(load_job(job_id).status == "succeeded" for job_id in job_ids)
