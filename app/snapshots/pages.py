"""Snapshot list page and the form that freezes a snapshot."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from app.deps import DB, AppSettings, PageUser, TransactionRoute
from app.pagination import Page, Pagination
from app.projects.service import get_project_for, member_role
from app.snapshots import service
from app.web.templating import render

router = APIRouter(include_in_schema=False, route_class=TransactionRoute)


@router.get("/projects/{project}/snapshots")
def snapshot_list(request: Request, project: str, db: DB, user: PageUser, page: Pagination) -> Response:
    target = get_project_for(db, user, project)
    snapshots, total = service.list_snapshots(db, target, page)
    return render(request, "snapshots/list.html", {
        "project": target, "snapshots": snapshots, "page": Page.build(snapshots, total, page),
        "role": member_role(db, user, target),
    })


@router.post("/projects/{project}/snapshots")
async def snapshot_create(
    request: Request, project: str, db: DB, user: PageUser, settings: AppSettings,
    include_unreviewed: Annotated[bool, Form()] = False,
    validation_fraction: Annotated[float, Form()] = 0.1, seed: Annotated[int, Form()] = 0,
) -> Response:
    target = get_project_for(db, user, project, need="manager")
    user_id = user.id
    db.expunge(target)
    db.rollback()

    options = service.SnapshotOptions(
        include_unreviewed=include_unreviewed, validation_fraction=validation_fraction, seed=seed,
    )
    await run_in_threadpool(
        service.create_snapshot, target, options, user_id=user_id, snapshot_root=settings.snapshot_dir,
    )
    return RedirectResponse(f"/projects/{target.slug}/snapshots", status_code=303)
