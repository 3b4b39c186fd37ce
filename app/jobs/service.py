"""Job operations shared by the API, the pages and the CLI: create, list, show and cancel.

Creating a job validates its parameters with the training config models (pydantic only), checks
that the snapshot and runs it names belong to the project, and stores it as queued. Nothing here
imports the ML stack, because a worker process runs the job.
"""

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import Conflict, InvalidInput, NotFound
from app.jobs import queue
from app.jobs.models import JOB_STATUSES, Job
from app.jobs.params import JOB_KINDS, parse_params
from app.logging import get_logger
from app.pagination import PageRequest
from app.projects.models import Project
from app.runs.models import Run
from app.snapshots.models import Snapshot

log = get_logger(__name__)

# Job kinds that read a snapshot. Suggest drafts for the project's pending items instead.
SNAPSHOT_KINDS = ("finetune", "evaluate")


def _snapshot(db: Session, project: Project, number: int | None) -> Snapshot | None:
    if number is None:
        return None
    snapshot = db.scalar(select(Snapshot).where(Snapshot.project_id == project.id, Snapshot.number == number))
    if snapshot is None:
        raise NotFound(f"snapshot {number} not found in project {project.slug!r}")
    if snapshot.status != "ready":
        raise InvalidInput(f"snapshot {number} has status {snapshot.status!r}: use a ready snapshot")
    return snapshot


def _finetune_run(db: Session, project: Project, run_id: int) -> Run:
    run = db.get(Run, run_id)
    if run is None or run.project_id != project.id or run.kind != "finetune":
        raise NotFound(f"fine-tune run {run_id} not found in project {project.slug!r}")
    if run.adapter_path is None and not (run.report or {}).get("model_path"):
        raise InvalidInput(f"run {run_id} saved no adapter or model, so it cannot be loaded")
    return run


def _require_rows(snapshot: Snapshot, split: str) -> None:
    if not (snapshot.row_counts or {}).get(split):
        raise InvalidInput(
            f"snapshot {snapshot.number} has no {split} rows: freeze a snapshot with more items"
            + (" or a larger validation share" if split == "validation" else "")
        )


def create_job(
    db: Session, project: Project, *, kind: str, params: Any, settings: Settings,
    snapshot_number: int | None = None, user_id: int | None = None,
) -> Job:
    """Validate and queue a job. An evaluate job without a snapshot uses its fine-tune run's snapshot."""
    if kind not in JOB_KINDS:
        raise InvalidInput(f"invalid job kind {kind!r}: use one of {', '.join(JOB_KINDS)}")
    stored = parse_params(kind, params, endpoint_url=settings.suggest_endpoint_url)
    snapshot = _snapshot(db, project, snapshot_number)

    run_id = stored.get("run_id") if kind in ("evaluate", "suggest") else None
    if run_id is not None:
        run = _finetune_run(db, project, run_id)
        if snapshot is None and kind == "evaluate":
            snapshot = db.get(Snapshot, run.snapshot_id) if run.snapshot_id is not None else None
    if kind in SNAPSHOT_KINDS and snapshot is None:
        raise InvalidInput(f"a {kind} job needs a snapshot: pass its number")
    if snapshot is not None and kind in SNAPSHOT_KINDS:
        _require_rows(snapshot, "train" if kind == "finetune" else "validation")

    job = Job(
        kind=kind, status="queued", project_id=project.id, snapshot_id=snapshot.id if snapshot else None,
        params=stored, max_attempts=settings.job_max_attempts, created_by_id=user_id,
        log=queue.append_log("", "queued"),
    )
    db.add(job)
    db.flush()

    log.info("job created", job_id=job.id, kind=kind, project_id=project.id, user_id=user_id)
    return job


def list_jobs(
    db: Session, project: Project, page: PageRequest, *, status: str | None = None, kind: str | None = None,
) -> tuple[list[Job], int]:
    conditions = [Job.project_id == project.id]
    if status is not None:
        if status not in JOB_STATUSES:
            raise InvalidInput(f"invalid status {status!r}: use one of {', '.join(JOB_STATUSES)}")
        conditions.append(Job.status == status)
    if kind is not None:
        if kind not in JOB_KINDS:
            raise InvalidInput(f"invalid kind {kind!r}: use one of {', '.join(JOB_KINDS)}")
        conditions.append(Job.kind == kind)
    total = db.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0
    jobs = db.scalars(
        select(Job).where(*conditions).order_by(Job.id.desc()).offset(page.offset).limit(page.page_size)
    ).all()
    return list(jobs), total


def get_job(db: Session, project: Project, job_id: int) -> Job:
    """Load a job of this project. A job of another project raises NotFound, so its existence does not leak."""
    job = db.get(Job, job_id)
    if job is None or job.project_id != project.id:
        raise NotFound(f"job {job_id} not found in project {project.slug!r}")
    return job


def cancel_job(db: Session, project: Project, job_id: int, *, user_id: int | None = None) -> Job:
    """Cancel a queued job now, or ask the worker of a running job to stop it within seconds."""
    job = get_job(db, project, job_id)
    if job.status in queue.FINISHED_STATUSES:
        raise Conflict(f"job {job_id} already ended with status {job.status!r}: nothing to cancel")
    queue.request_cancel(db, job)
    db.refresh(job)

    log.info("job cancel requested", job_id=job_id, project_id=project.id, user_id=user_id, status=job.status)
    return job


def snapshot_numbers(db: Session, snapshot_ids: set[int | None]) -> dict[int, int]:
    """Return {snapshot id: snapshot number} for display."""
    ids = [snapshot_id for snapshot_id in snapshot_ids if snapshot_id is not None]
    if not ids:
        return {}
    return dict(db.execute(select(Snapshot.id, Snapshot.number).where(Snapshot.id.in_(ids))).all())
