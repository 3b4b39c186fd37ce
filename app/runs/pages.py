"""Runs page: metrics per snapshot beside the base model, charts across snapshots, and job start forms."""

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from app.deps import DB, AppSettings, PageUser, TransactionRoute
from app.jobs.display import job_label_context
from app.jobs.service import snapshot_numbers
from app.pagination import Page, Pagination
from app.projects.service import get_project_for, member_role
from app.runs import service
from app.runs.chart import build_chart, format_value
from app.snapshots.models import Snapshot
from app.training.metrics import COMPARED_METRICS
from app.web.templating import render

router = APIRouter(include_in_schema=False, route_class=TransactionRoute)

# Fine-tune runs offered in the evaluate and suggest forms, newest first.
FORM_RUN_CHOICES = 100
# Snapshots offered in the start forms, newest first.
FORM_SNAPSHOT_CHOICES = 100
LOWER_IS_BETTER = ("validation_loss", "perplexity")


@router.get("/projects/{project}/runs")
def run_list(request: Request, project: str, db: DB, user: PageUser, page: Pagination, settings: AppSettings) -> Response:
    target = get_project_for(db, user, project)
    numbers, total = service.snapshots_with_runs(db, target, page)
    overview = service.overview(db, target, numbers)
    role = member_role(db, user, target)
    context = {
        "project": target, "groups": overview.groups, "page": Page.build(numbers, total, page),
        "charts": [build_chart(metric, overview.series[metric]) for metric in COMPARED_METRICS],
        "metrics": COMPARED_METRICS, "lower_is_better": LOWER_IS_BETTER, "format_value": format_value,
        "role": role, "base_query": "", "endpoint_configured": bool(settings.suggest_endpoint_url),
        **job_label_context(request.state.locale),
    }
    if role == "manager":
        context["snapshots"] = list(db.scalars(
            select(Snapshot).where(Snapshot.project_id == target.id, Snapshot.status == "ready")
            .order_by(Snapshot.number.desc()).limit(FORM_SNAPSHOT_CHOICES)
        ))
        finetunes = service.list_finetune_runs(db, target, FORM_RUN_CHOICES)
        context["finetune_runs"] = finetunes
        context["run_snapshots"] = snapshot_numbers(db, {run.snapshot_id for run in finetunes})
    return render(request, "runs/list.html", context)


@router.get("/projects/{project}/runs/{run_id}")
def run_detail(request: Request, project: str, run_id: int, db: DB, user: PageUser) -> Response:
    target = get_project_for(db, user, project)
    run = service.get_run(db, target, run_id)
    base = service.base_runs_for(db, [run]).get(run.id)
    return render(request, "runs/detail.html", {
        "project": target, "run": run, "base": base, "changes": service.comparison(run, base),
        "snapshot_number": snapshot_numbers(db, {run.snapshot_id}).get(run.snapshot_id),
        "role": member_role(db, user, target), "metrics": COMPARED_METRICS, "lower_is_better": LOWER_IS_BETTER, "format_value": format_value,
        **job_label_context(request.state.locale),
    })
