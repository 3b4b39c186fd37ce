"""Job pages: the job list, a job's progress and log (polled by htmx while it runs), start and cancel forms."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from app.deps import DB, AppSettings, PageUser, TransactionRoute
from app.errors import InvalidInput
from app.jobs import service
from app.jobs.display import ACTIVE_STATUSES, job_label_context
from app.pagination import Page, Pagination
from app.projects.service import get_project_for, member_role
from app.web.templating import render

router = APIRouter(include_in_schema=False, route_class=TransactionRoute)

# Form fields that become job parameters, per kind. Blank fields keep the config defaults.
FORM_FIELDS = {
    "finetune": (
        "base_model", "num_train_epochs", "max_steps", "learning_rate", "per_device_train_batch_size",
        "max_length", "lora_r", "save_steps", "logging_steps",
    ),
    "evaluate": ("run_id", "max_examples", "max_new_tokens"),
    "suggest": ("source", "run_id", "model", "limit", "max_new_tokens", "temperature"),
}
# For a suggestion job, the field that names the model depends on the chosen source.
SUGGEST_SOURCE_FIELDS = {"run": "run_id", "model": "model", "endpoint": "model"}


def _params_from_form(kind: str, form: Any) -> dict[str, Any]:
    params = {}
    for name in FORM_FIELDS[kind]:
        value = form.get(name)
        if isinstance(value, str) and value.strip():
            params[name] = value.strip()
    if kind == "suggest":
        keep = SUGGEST_SOURCE_FIELDS.get(params.get("source", ""), "")
        for name in ("run_id", "model"):
            if name != keep:
                params.pop(name, None)
    return params


def _snapshot_from_form(form: Any) -> int | None:
    value = form.get("snapshot")
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"invalid snapshot {value!r}: choose a snapshot number") from None


def _redirect(request: Request, url: str) -> Response:
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


@router.get("/projects/{project}/jobs")
def job_list(request: Request, project: str, db: DB, user: PageUser, page: Pagination) -> Response:
    target = get_project_for(db, user, project)
    jobs, total = service.list_jobs(db, target, page)
    context = {
        "project": target, "jobs": jobs, "page": Page.build(jobs, total, page),
        "snapshot_numbers": service.snapshot_numbers(db, {job.snapshot_id for job in jobs}),
        "polling": any(job.status in ACTIVE_STATUSES for job in jobs),
        "role": member_role(db, user, target), "base_query": "",
        **job_label_context(request.state.locale),
    }
    template = "jobs/_table.html" if request.headers.get("HX-Request") else "jobs/list.html"
    return render(request, template, context)


@router.post("/projects/{project}/jobs")
async def job_create(request: Request, project: str, db: DB, user: PageUser, settings: AppSettings) -> Response:
    target = get_project_for(db, user, project, need="manager")
    form = await request.form()
    kind = form.get("kind")
    if kind not in FORM_FIELDS:
        raise InvalidInput(f"invalid job kind {kind!r}: use finetune, evaluate or suggest")
    job = service.create_job(
        db, target, kind=kind, params=_params_from_form(kind, form), settings=settings,
        snapshot_number=_snapshot_from_form(form), user_id=user.id,
    )
    return _redirect(request, f"/projects/{target.slug}/jobs/{job.id}")


def _job_context(request: Request, db, user, target, job) -> dict[str, Any]:
    return {
        "project": target, "job": job, "role": member_role(db, user, target),
        "snapshot_number": service.snapshot_numbers(db, {job.snapshot_id}).get(job.snapshot_id),
        **job_label_context(request.state.locale),
    }


@router.get("/projects/{project}/jobs/{job_id}")
def job_detail(request: Request, project: str, job_id: int, db: DB, user: PageUser) -> Response:
    target = get_project_for(db, user, project)
    job = service.get_job(db, target, job_id)
    template = "jobs/_status.html" if request.headers.get("HX-Request") else "jobs/detail.html"
    return render(request, template, _job_context(request, db, user, target, job))


@router.post("/projects/{project}/jobs/{job_id}/cancel")
def job_cancel(request: Request, project: str, job_id: int, db: DB, user: PageUser) -> Response:
    target = get_project_for(db, user, project, need="manager")
    job = service.cancel_job(db, target, job_id, user_id=user.id)
    if request.headers.get("HX-Request"):
        return render(request, "jobs/_status.html", _job_context(request, db, user, target, job))
    return RedirectResponse(f"/projects/{target.slug}/jobs/{job.id}", status_code=303)
