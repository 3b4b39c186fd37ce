"""REST routes for projects and their members."""

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.annotation.questions import merge_patch
from app.auth.service import get_user_by_username
from app.deps import DB, ApiUser, TransactionRoute
from app.pagination import Page, Pagination
from app.projects import service

router = APIRouter(prefix="/api/v1/projects", tags=["projects"], route_class=TransactionRoute)


class ProjectIn(BaseModel):
    slug: str
    name: str
    guidelines: str = ""
    annotations_per_item: int = Field(1, description="annotations each item needs, from different people")
    review_required: bool = True
    self_review: bool = Field(False, description="whether reviewers may accept or reject their own annotations")
    settings: dict[str, Any] = Field(default_factory=dict)


class ProjectPatch(BaseModel):
    name: str | None = None
    guidelines: str | None = None
    annotations_per_item: int | None = None
    review_required: bool | None = None
    self_review: bool | None = None
    settings: dict[str, Any] | None = Field(
        None, description="merged into the stored settings (JSON merge patch: null removes a key)"
    )


class ProjectOut(BaseModel):
    slug: str
    name: str
    guidelines: str
    annotations_per_item: int
    review_required: bool
    self_review: bool
    settings: dict[str, Any]
    item_counts: dict[str, int]
    created_at: datetime


class MemberIn(BaseModel):
    role: str = Field(description="annotator, reviewer or manager")


class MemberOut(BaseModel):
    username: str
    display_name: str
    role: str


def _project_out(project, counts: dict[str, int]) -> ProjectOut:
    return ProjectOut(
        slug=project.slug, name=project.name, guidelines=project.guidelines,
        annotations_per_item=project.annotations_per_item, review_required=project.review_required,
        self_review=project.self_review, settings=project.settings or {}, item_counts=counts, created_at=project.created_at,
    )


@router.get("")
def list_projects(db: DB, user: ApiUser, page: Pagination) -> Page[ProjectOut]:
    projects, total = service.list_projects_for(db, user, page)
    counts = service.status_counts(db, [p.id for p in projects])
    return Page[ProjectOut].build([_project_out(p, counts[p.id]) for p in projects], total, page)


@router.post("", status_code=201)
def create_project(body: ProjectIn, db: DB, user: ApiUser) -> ProjectOut:
    project = service.create_project(db, user, **body.model_dump())
    return _project_out(project, {"total": 0})


@router.get("/{project}")
def get_project(project: str, db: DB, user: ApiUser) -> ProjectOut:
    target = service.get_project_for(db, user, project)
    return _project_out(target, service.status_counts(db, [target.id])[target.id])


@router.patch("/{project}")
def update_project(project: str, body: ProjectPatch, db: DB, user: ApiUser) -> ProjectOut:
    target = service.get_project_for(db, user, project, need="manager")
    changes = body.model_dump(exclude_unset=True)
    if changes.get("settings") is not None:
        # Settings merge into the stored ones (JSON merge patch); the service validates the result.
        changes["settings"] = merge_patch(target.settings or {}, changes["settings"])
    service.update_project(db, target, **changes)
    return _project_out(target, service.status_counts(db, [target.id])[target.id])


@router.get("/{project}/members")
def list_members(project: str, db: DB, user: ApiUser) -> list[MemberOut]:
    target = service.get_project_for(db, user, project)
    return [
        MemberOut(username=u.username, display_name=u.display_name, role=m.role)
        for m, u in service.list_members(db, target)
    ]


@router.put("/{project}/members/{username}")
def set_member(project: str, username: str, body: MemberIn, db: DB, user: ApiUser) -> MemberOut:
    target = service.get_project_for(db, user, project, need="manager")
    member_user = get_user_by_username(db, username)
    member = service.add_member(db, target, member_user, body.role)
    return MemberOut(username=member_user.username, display_name=member_user.display_name, role=member.role)


@router.delete("/{project}/members/{username}", status_code=204)
def remove_member(project: str, username: str, db: DB, user: ApiUser) -> None:
    target = service.get_project_for(db, user, project, need="manager")
    service.remove_member(db, target, get_user_by_username(db, username))
