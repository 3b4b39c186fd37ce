"""The database job queue: claim a job under a lease, renew it, and record how the attempt ended.

Every state change is one short transaction whose UPDATE names the state it expects, so two
processes can never both move a job out of the same state:

- claim: `queued` (run_after reached) -> `running`, with lease owner, expiry and attempt number.
  PostgreSQL picks the row with `SELECT ... FOR UPDATE SKIP LOCKED`, so concurrent claimers take
  different jobs. SQLite write sessions start with BEGIN IMMEDIATE (see app.db), so claimers run
  one at a time, and the conditional UPDATE still checks that the job is queued.
- every later write by the worker (lease renewal, progress, result) requires the same lease:
  status `running`, lease owner and attempt number. A worker whose lease expired and was taken
  over gets `held=False` back and must stop without writing anything else.
- a running job whose lease expired goes back to `queued` with a delay that doubles per attempt,
  or to `failed` once it has used max_attempts attempts.

Times come from the worker's clock (UTC), so the clocks of machines that share a queue must agree
to well within the lease length.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session

from app.db import unit_of_work, utcnow
from app.jobs.models import Job
from app.logging import get_logger

log = get_logger(__name__)

# The job log keeps its newest characters up to this size. Older text is cut at a line break.
MAX_LOG_CHARS = 64_000
# A retry waits base * 2**(attempt - 1) seconds, capped here.
DEFAULT_RETRY_BASE_S = 10.0
MAX_RETRY_DELAY_S = 600.0
FINISHED_STATUSES = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Lease:
    """Proof that one worker owns one attempt of a job."""

    job_id: int
    owner: str
    attempt: int


@dataclass(frozen=True)
class ClaimedJob:
    """A claimed job, as returned to the worker that claimed it."""

    lease: Lease
    kind: str
    project_id: int
    snapshot_id: int | None
    params: dict[str, Any]
    max_attempts: int
    log: str
    created_at: datetime


@dataclass(frozen=True)
class LeaseState:
    """Lease status read from the job row: whether this worker still holds it, and the cancel flag."""

    held: bool
    cancel_requested: bool


def retry_delay_s(attempt: int, base_s: float = DEFAULT_RETRY_BASE_S) -> float:
    """Return the wait before attempt `attempt + 1`, doubling per attempt up to MAX_RETRY_DELAY_S."""
    return min(base_s * 2 ** max(attempt - 1, 0), MAX_RETRY_DELAY_S)


def append_log(text: str, message: str, *, now: datetime | None = None) -> str:
    """Append one timestamped line to a job log and cut the oldest text beyond MAX_LOG_CHARS."""
    stamp = (now or utcnow()).strftime("%Y-%m-%d %H:%M:%S")
    text = f"{text}{stamp}  {message}\n"
    if len(text) <= MAX_LOG_CHARS:
        return text
    tail = text[-MAX_LOG_CHARS:]
    cut = tail.find("\n")
    return "[older lines removed]\n" + (tail[cut + 1:] if cut >= 0 else tail)


def _lease_clause(lease: Lease):
    return and_(
        Job.id == lease.job_id, Job.status == "running", Job.lease_owner == lease.owner,
        Job.attempts == lease.attempt,
    )


def _update(db: Session, *conditions, **values) -> int:
    result = db.execute(
        update(Job).where(*conditions).values(**values).execution_options(synchronize_session=False)
    )
    return result.rowcount


def has_claimable_job(*, now: datetime | None = None, kinds: Iterable[str] | None = None) -> bool:
    """Return whether a job is ready to claim or a running job's lease has expired.

    A read-only check, so idle workers do not take SQLite's write lock on every poll.
    """
    now = now or utcnow()
    ready = or_(
        and_(Job.status == "queued", Job.run_after <= now),
        and_(Job.status == "running", Job.lease_expires_at < now),
    )
    query = select(exists().where(ready, *([Job.kind.in_(list(kinds))] if kinds else [])))
    with unit_of_work(write=False) as db:
        return bool(db.scalar(query))


def requeue_expired(db: Session, *, now: datetime, retry_base_s: float = DEFAULT_RETRY_BASE_S) -> list[int]:
    """Put running jobs whose lease expired back in the queue, or fail those that used all their attempts.

    Returns the ids of the jobs it changed. Runs inside the caller's write transaction.
    """
    expired = db.execute(
        select(Job.id, Job.attempts, Job.max_attempts, Job.lease_owner, Job.log, Job.cancel_requested)
        .where(Job.status == "running", Job.lease_expires_at < now)
        .order_by(Job.id).with_for_update(skip_locked=True)
    ).all()
    changed = []
    for job_id, attempts, max_attempts, owner, text, cancel_requested in expired:
        still_expired = (Job.id == job_id, Job.status == "running", Job.lease_expires_at < now,
                         Job.attempts == attempts)
        if cancel_requested:
            count = _update(
                db, *still_expired, status="cancelled", finished_at=now, lease_owner=None, lease_expires_at=None,
                log=append_log(text, f"lease of {owner} expired after a cancel request, job cancelled", now=now),
            )
            outcome = "cancelled"
        elif attempts >= max_attempts:
            error = f"the worker stopped renewing its lease during attempt {attempts} of {max_attempts}"
            count = _update(
                db, *still_expired, status="failed", error=error, finished_at=now, lease_owner=None,
                lease_expires_at=None, log=append_log(text, f"lease of {owner} expired, no attempts left", now=now),
            )
            outcome = "failed"
        else:
            run_after = now + timedelta(seconds=retry_delay_s(attempts, retry_base_s))
            message = f"lease of {owner} expired, retry after {run_after:%H:%M:%S} UTC"
            count = _update(
                db, *still_expired, status="queued", run_after=run_after, lease_owner=None,
                lease_expires_at=None, log=append_log(text, message, now=now),
            )
            outcome = "requeued"
        if count:
            changed.append(job_id)
            log.warning("job lease expired", job_id=job_id, attempt=attempts, lease_owner=owner, outcome=outcome)
    return changed


def claim_next(
    owner: str, *, lease_s: float, now: datetime | None = None, kinds: Iterable[str] | None = None,
    retry_base_s: float = DEFAULT_RETRY_BASE_S,
) -> ClaimedJob | None:
    """Claim the oldest ready job for `owner`, or return None when there is none.

    Expired leases are requeued first, in the same transaction.
    """
    now = now or utcnow()
    kind_filter = [Job.kind.in_(list(kinds))] if kinds else []
    with unit_of_work() as db:
        requeue_expired(db, now=now, retry_base_s=retry_base_s)
        row = db.execute(
            select(Job.id, Job.attempts)
            .where(Job.status == "queued", Job.run_after <= now, *kind_filter)
            .order_by(Job.run_after, Job.id).limit(1).with_for_update(skip_locked=True)
        ).first()
        if row is None:
            return None
        attempt = row.attempts + 1
        claimed = _update(
            db, Job.id == row.id, Job.status == "queued", Job.attempts == row.attempts,
            status="running", attempts=attempt, lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_s), heartbeat_at=now,
        )
        if not claimed:
            return None
        db.execute(
            update(Job).where(Job.id == row.id, Job.started_at.is_(None)).values(started_at=now)
            .execution_options(synchronize_session=False)
        )
        job = db.execute(
            select(Job.kind, Job.project_id, Job.snapshot_id, Job.params, Job.max_attempts, Job.log, Job.created_at)
            .where(Job.id == row.id)
        ).one()

    log.info("job claimed", job_id=row.id, kind=job.kind, attempt=attempt, lease_owner=owner)
    return ClaimedJob(
        lease=Lease(job_id=row.id, owner=owner, attempt=attempt), kind=job.kind, project_id=job.project_id,
        snapshot_id=job.snapshot_id, params=dict(job.params or {}), max_attempts=job.max_attempts,
        log=job.log or "", created_at=job.created_at,
    )


def renew_lease(
    lease: Lease, *, lease_s: float, progress: dict[str, Any] | None = None, log_text: str | None = None,
    now: datetime | None = None,
) -> LeaseState:
    """Extend the lease by lease_s from now and store progress and log when given."""
    now = now or utcnow()
    values: dict[str, Any] = {"lease_expires_at": now + timedelta(seconds=lease_s), "heartbeat_at": now}
    if progress is not None:
        values["progress"] = progress
    if log_text is not None:
        values["log"] = log_text
    with unit_of_work() as db:
        if not _update(db, _lease_clause(lease), **values):
            return LeaseState(held=False, cancel_requested=False)
        cancel = db.scalar(select(Job.cancel_requested).where(Job.id == lease.job_id))
    return LeaseState(held=True, cancel_requested=bool(cancel))


def read_lease_state(lease: Lease) -> LeaseState:
    """Read whether the lease is still held and whether cancellation was requested, without writing."""
    with unit_of_work(write=False) as db:
        row = db.execute(
            select(Job.cancel_requested).where(_lease_clause(lease))
        ).first()
    if row is None:
        return LeaseState(held=False, cancel_requested=False)
    return LeaseState(held=True, cancel_requested=bool(row.cancel_requested))


def lock_lease(db: Session, lease: Lease) -> bool:
    """Lock the job row inside the caller's write transaction, or return False when the lease is gone.

    A handler calls this before writing results in the same transaction, so results of an attempt
    that lost its lease are rolled back with it.
    """
    row = db.execute(select(Job.id).where(_lease_clause(lease)).with_for_update()).first()
    return row is not None


def finish(
    lease: Lease, status: str, *, log_text: str, progress: dict[str, Any] | None = None,
    result: dict[str, Any] | None = None, error: str | None = None,
    write: Callable[[Session], dict[str, Any] | None] | None = None, now: datetime | None = None,
) -> bool:
    """Move the job to a finished status and run `write` in the same transaction.

    `write` stores what the job produced (runs, candidates), and the dict it returns is merged into
    the job's result. Returns False, and writes nothing, when the lease is no longer held.
    """
    if status not in FINISHED_STATUSES:
        raise ValueError(f"invalid finished status {status!r}: use one of {', '.join(FINISHED_STATUSES)}")
    now = now or utcnow()
    values: dict[str, Any] = {
        "status": status, "finished_at": now, "lease_owner": None, "lease_expires_at": None,
        "log": log_text, "error": error,
    }
    if progress is not None:
        values["progress"] = progress
    with unit_of_work() as db:
        if not lock_lease(db, lease):
            return False
        stored = write(db) if write is not None else None
        if result is not None or stored:
            values["result"] = {**(result or {}), **(stored or {})}
        _update(db, _lease_clause(lease), **values)
    return True


def retry_later(
    lease: Lease, *, error: str, log_text: str, retry_base_s: float = DEFAULT_RETRY_BASE_S,
    now: datetime | None = None,
) -> str | None:
    """Queue the job again after a failed attempt, or fail it when no attempt is left.

    Returns the new status ("queued" or "failed"), or None when the lease is no longer held.
    """
    now = now or utcnow()
    with unit_of_work() as db:
        max_attempts = db.scalar(select(Job.max_attempts).where(_lease_clause(lease)).with_for_update())
        if max_attempts is None:
            return None
        if lease.attempt >= max_attempts:
            _update(
                db, _lease_clause(lease), status="failed", error=error, finished_at=now, lease_owner=None,
                lease_expires_at=None, log=log_text,
            )
            return "failed"
        run_after = now + timedelta(seconds=retry_delay_s(lease.attempt, retry_base_s))
        _update(
            db, _lease_clause(lease), status="queued", error=error, run_after=run_after, lease_owner=None,
            lease_expires_at=None, log=append_log(log_text, f"retry after {run_after:%H:%M:%S} UTC", now=now),
        )
        return "queued"


def release(lease: Lease, *, log_text: str, now: datetime | None = None) -> bool:
    """Put a job back in the queue at once, for a worker that shuts down in the middle of it.

    The attempt is not counted, because the job did not fail. Returns False when the lease is gone.
    """
    now = now or utcnow()
    with unit_of_work() as db:
        return bool(_update(
            db, _lease_clause(lease), status="queued", attempts=lease.attempt - 1, run_after=now,
            lease_owner=None, lease_expires_at=None, log=log_text,
        ))


def request_cancel(db: Session, job: Job, *, now: datetime | None = None) -> None:
    """Cancel a queued job at once, or flag a running job so that its worker stops it.

    Both updates name the status they expect, so a worker that claims the job at the same moment
    either sees the flag or never gets the job.
    """
    now = now or utcnow()
    if _update(db, Job.id == job.id, Job.status == "queued", status="cancelled", cancel_requested=True,
               finished_at=now, log=append_log(job.log or "", "cancelled before it started", now=now)):
        return
    _update(db, Job.id == job.id, Job.status == "running", cancel_requested=True)
