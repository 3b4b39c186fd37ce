"""REST routes for runs: fine-tunes and evaluations with their metrics."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from app.deps import DB, ApiUser, TransactionRoute
from app.jobs.service import snapshot_numbers
from app.pagination import Page, Pagination
from app.projects.service import get_project_for
from app.runs import service
from app.runs.models import Run

router = APIRouter(prefix="/api/v1/projects/{project}/runs", tags=["runs"], route_class=TransactionRoute)


class RunOut(BaseModel):
    id: int
    kind: str
    snapshot: int | None
    job_id: int | None
    parent_run_id: int | None = Field(description="for an evaluation, the fine-tune run it scored (null for a base model)")
    base_model: str
    adapter_path: str | None
    config: dict[str, Any]
    metrics: dict[str, Any]
    comparison: dict[str, Any] | None = Field(
        description="for an evaluation of a fine-tune run: each metric of the base model and of the run, "
        "delta (run minus base) and improved"
    )
    base_run_id: int | None = Field(description="the base model evaluation that comparison uses")
    report: dict[str, Any]
    created_at: datetime


def run_out(run: Run, snapshot_number: int | None, base: Run | None) -> RunOut:
    return RunOut(
        id=run.id, kind=run.kind, snapshot=snapshot_number, job_id=run.job_id, parent_run_id=run.parent_run_id,
        base_model=run.base_model, adapter_path=run.adapter_path, config=run.config or {},
        metrics=run.metrics or {}, comparison=service.comparison(run, base),
        base_run_id=base.id if base is not None else None, report=run.report or {}, created_at=run.created_at,
    )


@router.get("")
def list_runs(
    project: str, db: DB, user: ApiUser, page: Pagination,
    kind: Annotated[str | None, Query(description="finetune or evaluate")] = None,
    snapshot: Annotated[int | None, Query(description="only runs on this snapshot number")] = None,
) -> Page[RunOut]:
    target = get_project_for(db, user, project)
    runs, total = service.list_runs(db, target, page, kind=kind, snapshot_number=snapshot)
    numbers = snapshot_numbers(db, {run.snapshot_id for run in runs})
    bases = service.base_runs_for(db, runs)
    return Page[RunOut].build(
        [run_out(run, numbers.get(run.snapshot_id), bases.get(run.id)) for run in runs], total, page,
    )


@router.get("/{run_id}")
def get_run(project: str, run_id: int, db: DB, user: ApiUser) -> RunOut:
    target = get_project_for(db, user, project)
    run = service.get_run(db, target, run_id)
    numbers = snapshot_numbers(db, {run.snapshot_id})
    return run_out(run, numbers.get(run.snapshot_id), service.base_runs_for(db, [run]).get(run.id))
