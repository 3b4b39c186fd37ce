"""Project list and project overview pages."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from app.deps import DB, PageUser, TransactionRoute
from app.pagination import Page, Pagination
from app.projects import service
from app.web.templating import render

router = APIRouter(include_in_schema=False, route_class=TransactionRoute)


@router.get("/")
def project_list(request: Request, db: DB, user: PageUser, page: Pagination) -> Response:
    projects, total = service.list_projects_for(db, user, page)
    return render(request, "projects/list.html", {
        "projects": projects, "counts": service.status_counts(db, [p.id for p in projects]),
        "page": Page.build(projects, total, page),
    })


@router.post("/projects")
def create_project(
    request: Request, db: DB, user: PageUser,
    name: Annotated[str, Form()], slug: Annotated[str, Form()],
    annotations_per_item: Annotated[int, Form()] = 1, guidelines: Annotated[str, Form()] = "",
) -> Response:
    project = service.create_project(
        db, user, slug=slug, name=name, guidelines=guidelines, annotations_per_item=annotations_per_item,
    )
    return RedirectResponse(f"/projects/{project.slug}", status_code=303)


@router.get("/projects/{project}")
def project_detail(request: Request, project: str, db: DB, user: PageUser) -> Response:
    target = service.get_project_for(db, user, project)
    return render(request, "projects/detail.html", {
        "project": target, "counts": service.status_counts(db, [target.id])[target.id],
        "role": service.member_role(db, user, target),
    })
