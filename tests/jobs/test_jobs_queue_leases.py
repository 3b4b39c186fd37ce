"""Leases: expiry, retries with backoff, attempt counting, and writes by a worker that lost its lease."""

from datetime import timedelta

from app.db import utcnow
from app.jobs import queue
from app.runs.models import Run

LEASE_S = 30


def test_expired_lease_requeues_with_backoff(add_job, load_job) -> None:
    job_id = add_job(max_attempts=3)
    start = utcnow()
    queue.claim_next("dead-worker", lease_s=LEASE_S, now=start)
    expired = start + timedelta(seconds=LEASE_S + 1)

    early = queue.claim_next("second", lease_s=LEASE_S, now=expired, retry_base_s=10)

    stored = load_job(job_id)
    assert early is None
    assert stored.status == "queued"
    assert stored.attempts == 1
    assert stored.lease_owner is None
    assert stored.run_after == expired + timedelta(seconds=10)
    assert "lease of dead-worker expired" in stored.log


def test_retry_after_backoff_counts_attempt(add_job, load_job) -> None:
    job_id = add_job(max_attempts=3)
    start = utcnow()
    queue.claim_next("dead-worker", lease_s=LEASE_S, now=start)
    expired = start + timedelta(seconds=LEASE_S + 1)
    queue.claim_next("second", lease_s=LEASE_S, now=expired, retry_base_s=10)

    retried = queue.claim_next("second", lease_s=LEASE_S, now=expired + timedelta(seconds=11), retry_base_s=10)

    assert retried is not None
    assert retried.lease.attempt == 2
    assert load_job(job_id).attempts == 2
    assert load_job(job_id).lease_owner == "second"


def test_expiry_after_max_attempts_fails_job(add_job, load_job) -> None:
    job_id = add_job(max_attempts=2)
    now = utcnow()
    for attempt in (1, 2):
        claimed = queue.claim_next(f"worker-{attempt}", lease_s=LEASE_S, now=now, retry_base_s=0)
        assert claimed.lease.attempt == attempt
        now += timedelta(seconds=LEASE_S + 5)

    nothing = queue.claim_next("worker-3", lease_s=LEASE_S, now=now, retry_base_s=0)

    stored = load_job(job_id)
    assert nothing is None
    assert stored.status == "failed"
    assert stored.attempts == 2
    assert "attempt 2 of 2" in stored.error
    assert stored.finished_at is not None


def test_renewal_extends_lease_and_stores_progress(add_job, load_job) -> None:
    job_id = add_job()
    start = utcnow()
    claimed = queue.claim_next("w", lease_s=LEASE_S, now=start)

    state = queue.renew_lease(
        claimed.lease, lease_s=LEASE_S, progress={"step": 3, "total_steps": 10}, log_text="hello\n",
        now=start + timedelta(seconds=20),
    )

    stored = load_job(job_id)
    assert state.held
    assert not state.cancel_requested
    assert stored.lease_expires_at == start + timedelta(seconds=20 + LEASE_S)
    assert stored.progress == {"step": 3, "total_steps": 10}
    assert stored.log == "hello\n"


def test_taken_over_lease_rejects_old_worker(add_job, load_job, project_id) -> None:
    job_id = add_job()
    start = utcnow()
    old = queue.claim_next("old", lease_s=LEASE_S, now=start)
    later = start + timedelta(seconds=LEASE_S + 1)
    # With no backoff the expired job is requeued and claimed in the same call.
    new = queue.claim_next("new", lease_s=LEASE_S, now=later, retry_base_s=0)

    renewed = queue.renew_lease(old.lease, lease_s=LEASE_S, progress={"step": 99}, now=later)

    def write(db):
        db.add(Run(project_id=project_id, kind="finetune", base_model="tiny"))

    finished = queue.finish(old.lease, "succeeded", log_text="stale", write=write, now=later)
    stored = load_job(job_id)
    assert new.lease.attempt == 2
    assert not renewed.held
    assert not finished
    assert stored.status == "running"
    assert stored.lease_owner == "new"
    assert stored.progress != {"step": 99}
    assert "stale" not in stored.log
    assert not queue.read_lease_state(old.lease).held
    assert queue.read_lease_state(new.lease).held


def test_finish_runs_write_in_same_transaction(add_job, load_job, project_id) -> None:
    job_id = add_job()
    claimed = queue.claim_next("w", lease_s=LEASE_S)

    def write(db):
        run = Run(project_id=project_id, kind="finetune", base_model="tiny")
        db.add(run)
        db.flush()
        return {"run_id": run.id}

    stored_ok = queue.finish(claimed.lease, "succeeded", log_text="done\n", result={"loss": 1.5}, write=write)

    stored = load_job(job_id)
    assert stored_ok
    assert stored.status == "succeeded"
    assert stored.result["loss"] == 1.5
    assert isinstance(stored.result["run_id"], int)
    assert stored.lease_owner is None
    assert stored.finished_at is not None


def test_retry_later_then_fail_when_attempts_used(add_job, load_job) -> None:
    job_id = add_job(max_attempts=2)
    now = utcnow()
    first = queue.claim_next("w", lease_s=LEASE_S, now=now)

    after_first = queue.retry_later(first.lease, error="boom", log_text="", retry_base_s=5, now=now)
    second = queue.claim_next("w", lease_s=LEASE_S, now=now + timedelta(seconds=6))
    after_second = queue.retry_later(second.lease, error="boom again", log_text="", now=now)

    stored = load_job(job_id)
    assert after_first == "queued"
    assert second.lease.attempt == 2
    assert after_second == "failed"
    assert stored.status == "failed"
    assert stored.error == "boom again"


def test_release_does_not_count_attempt(add_job, load_job) -> None:
    job_id = add_job()
    claimed = queue.claim_next("w", lease_s=LEASE_S)

    released = queue.release(claimed.lease, log_text="shutting down\n")
    again = queue.claim_next("other", lease_s=LEASE_S)

    assert released
    assert again.lease.job_id == job_id
    assert again.lease.attempt == 1
    assert load_job(job_id).lease_owner == "other"


def test_cancel_queued_job_ends_it(add_job, load_job) -> None:
    from app.db import unit_of_work
    from app.jobs.models import Job

    job_id = add_job()
    with unit_of_work() as db:
        queue.request_cancel(db, db.get(Job, job_id))

    stored = load_job(job_id)
    assert stored.status == "cancelled"
    assert stored.cancel_requested
    assert queue.claim_next("w", lease_s=LEASE_S) is None


def test_cancel_running_job_sets_flag(add_job, load_job) -> None:
    from app.db import unit_of_work
    from app.jobs.models import Job

    job_id = add_job()
    claimed = queue.claim_next("w", lease_s=LEASE_S)
    with unit_of_work() as db:
        queue.request_cancel(db, db.get(Job, job_id))

    assert load_job(job_id).status == "running"
    assert queue.read_lease_state(claimed.lease).cancel_requested
    assert queue.renew_lease(claimed.lease, lease_s=LEASE_S).cancel_requested


def test_expired_lease_after_cancel_request_cancels(add_job, load_job) -> None:
    from app.db import unit_of_work
    from app.jobs.models import Job

    job_id = add_job(max_attempts=3)
    start = utcnow()
    queue.claim_next("dead-worker", lease_s=LEASE_S, now=start)
    with unit_of_work() as db:
        queue.request_cancel(db, db.get(Job, job_id))

    claimed = queue.claim_next("second", lease_s=LEASE_S, now=start + timedelta(seconds=LEASE_S + 1), retry_base_s=0)

    stored = load_job(job_id)
    assert claimed is None
    assert stored.status == "cancelled"
    assert stored.attempts == 1
    assert "after a cancel request" in stored.log
