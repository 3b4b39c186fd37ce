"""REST routes for jobs: create, list, show with progress and log, cancel."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from app.deps import DB, ApiUser, AppSettings, TransactionRoute
from app.jobs import service
from app.jobs.models import Job
from app.pagination import Page, Pagination
from app.projects.service import get_project_for

router = APIRouter(prefix="/api/v1/projects/{project}/jobs", tags=["jobs"], route_class=TransactionRoute)


class JobIn(BaseModel):
    kind: str = Field(description="finetune, evaluate or suggest")
    snapshot: int | None = Field(
        None, description="snapshot number, needed by finetune. Evaluate defaults to the run's snapshot."
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="finetune takes FineTuneConfig fields (base_model may be 'tiny'). evaluate takes run_id or "
        "base_model plus EvaluateConfig fields. suggest takes source (run, model or endpoint), run_id or model, "
        "limit, and max_new_tokens, batch_size, temperature, timeout_s.",
    )


class JobOut(BaseModel):
    id: int
    kind: str
    status: str
    snapshot: int | None
    params: dict[str, Any]
    attempts: int
    max_attempts: int
    cancel_requested: bool
    progress: dict[str, Any]
    error: str | None
    result: dict[str, Any]
    run_after: datetime
    lease_expires_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobDetailOut(JobOut):
    log: str = Field(description="the job's log, cut to its newest 64,000 characters")


def job_out(job: Job, snapshot_number: int | None, *, detail: bool = False) -> JobOut:
    fields: dict[str, Any] = {
        "id": job.id, "kind": job.kind, "status": job.status, "snapshot": snapshot_number,
        "params": job.params or {}, "attempts": job.attempts, "max_attempts": job.max_attempts,
        "cancel_requested": job.cancel_requested, "progress": job.progress or {}, "error": job.error,
        "result": job.result or {}, "run_after": job.run_after, "lease_expires_at": job.lease_expires_at,
        "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
    }
    if detail:
        return JobDetailOut(**fields, log=job.log or "")
    return JobOut(**fields)


@router.post("", status_code=201)
def create_job(project: str, body: JobIn, db: DB, user: ApiUser, settings: AppSettings) -> JobDetailOut:
    target = get_project_for(db, user, project, need="manager")
    job = service.create_job(
        db, target, kind=body.kind, params=body.params, settings=settings, snapshot_number=body.snapshot,
        user_id=user.id,
    )
    numbers = service.snapshot_numbers(db, {job.snapshot_id})
    return job_out(job, numbers.get(job.snapshot_id), detail=True)


@router.get("")
def list_jobs(
    project: str, db: DB, user: ApiUser, page: Pagination,
    status: Annotated[str | None, Query(description="queued, running, succeeded, failed or cancelled")] = None,
    kind: Annotated[str | None, Query(description="finetune, evaluate or suggest")] = None,
) -> Page[JobOut]:
    target = get_project_for(db, user, project)
    jobs, total = service.list_jobs(db, target, page, status=status, kind=kind)
    numbers = service.snapshot_numbers(db, {job.snapshot_id for job in jobs})
    return Page[JobOut].build([job_out(job, numbers.get(job.snapshot_id)) for job in jobs], total, page)


@router.get("/{job_id}")
def get_job(project: str, job_id: int, db: DB, user: ApiUser) -> JobDetailOut:
    target = get_project_for(db, user, project)
    job = service.get_job(db, target, job_id)
    numbers = service.snapshot_numbers(db, {job.snapshot_id})
    return job_out(job, numbers.get(job.snapshot_id), detail=True)


@router.post("/{job_id}/cancel")
def cancel_job(project: str, job_id: int, db: DB, user: ApiUser) -> JobDetailOut:
    target = get_project_for(db, user, project, need="manager")
    job = service.cancel_job(db, target, job_id, user_id=user.id)
    numbers = service.snapshot_numbers(db, {job.snapshot_id})
    return job_out(job, numbers.get(job.snapshot_id), detail=True)
