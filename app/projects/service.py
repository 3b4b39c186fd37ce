"""Projects, their members, and who may do what in them."""

import re
from typing import Any

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.orm import Session

from app.auth.models import User
from app.db import utcnow
from app.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from app.logging import get_logger
from app.pagination import PageRequest
from app.projects.models import MEMBER_ROLES, Project, ProjectMember

log = get_logger(__name__)

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MAX_ANNOTATIONS_PER_ITEM = 20
# Member roles that may review, and that may manage (import, snapshot, train, settings).
REVIEW_ROLES = frozenset({"reviewer", "manager"})
MANAGE_ROLES = frozenset({"manager"})


def _validate_project_fields(name: str | None, annotations_per_item: int | None) -> None:
    if name is not None and not 1 <= len(name.strip()) <= 200:
        raise InvalidInput("project name must be 1 to 200 characters")
    if annotations_per_item is not None and not 1 <= annotations_per_item <= MAX_ANNOTATIONS_PER_ITEM:
        raise InvalidInput(
            f"invalid annotations_per_item {annotations_per_item}: use 1 to {MAX_ANNOTATIONS_PER_ITEM}"
        )


def create_project(
    db: Session, creator: User, *, slug: str, name: str, guidelines: str = "",
    annotations_per_item: int = 1, review_required: bool = True, self_review: bool = False,
    settings: dict[str, Any] | None = None,
) -> Project:
    if not creator.is_admin:
        raise PermissionDenied("creating a project needs the admin role")
    if not SLUG_PATTERN.match(slug):
        raise InvalidInput(
            f"invalid slug {slug!r}: use 1 to 63 lowercase letters, digits and '-', starting with a letter or digit"
        )
    _validate_project_fields(name, annotations_per_item)
    settings = _validated_settings(settings or {})
    if db.scalar(select(Project.id).where(Project.slug == slug)) is not None:
        raise Conflict(f"project slug {slug!r} is already taken: choose another")

    project = Project(
        slug=slug, name=name.strip(), guidelines=guidelines, annotations_per_item=annotations_per_item,
        review_required=review_required, self_review=self_review, settings=settings, created_by_id=creator.id,
    )
    db.add(project)
    db.flush()
    db.add(ProjectMember(project_id=project.id, user_id=creator.id, role="manager"))
    db.flush()

    log.info("project created", project_id=project.id, user_id=creator.id)
    return project


def update_project(
    db: Session, project: Project, *, name: str | None = None, guidelines: str | None = None,
    annotations_per_item: int | None = None, review_required: bool | None = None,
    self_review: bool | None = None, settings: dict[str, Any] | None = None,
) -> Project:
    _validate_project_fields(name, annotations_per_item)
    if settings is not None:
        settings = _validated_settings(settings)
    # Items already annotated change status when the overlap or the review rule changes.
    overlap_changed = annotations_per_item not in (None, project.annotations_per_item)
    review_changed = review_required not in (None, project.review_required)
    recount = overlap_changed or review_changed
    if name is not None:
        project.name = name.strip()
    if guidelines is not None:
        project.guidelines = guidelines
    if annotations_per_item is not None:
        project.annotations_per_item = annotations_per_item
    if review_required is not None:
        project.review_required = review_required
    if self_review is not None:
        project.self_review = self_review
    if settings is not None:
        project.settings = settings
    db.flush()
    if recount:
        from app.annotation.service import refresh_project_items

        refresh_project_items(db, project, utcnow())

    log.info("project updated", project_id=project.id, recounted=recount)
    return project


def _validated_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Validate annotation settings and return the form to store; raise InvalidInput naming the field."""
    from app.annotation.questions import parse_settings, settings_to_store

    return settings_to_store(parse_settings(settings))


def member_role(db: Session, user: User, project: Project) -> str | None:
    if user.is_admin:
        return "manager"
    return db.scalar(
        select(ProjectMember.role).where(
            ProjectMember.project_id == project.id, ProjectMember.user_id == user.id
        )
    )


# The project with the caller's membership role, in one statement: every request into a project runs it.
_PROJECT_AND_ROLE = (
    select(Project, ProjectMember.role)
    .outerjoin(
        ProjectMember,
        and_(ProjectMember.project_id == Project.id, ProjectMember.user_id == bindparam("user_id")),
    )
    .where(Project.slug == bindparam("slug"))
)


def get_project_for(db: Session, user: User, slug: str, *, need: str = "member") -> Project:
    """Load a project the user may see; need is "member", "reviewer" or "manager".

    A project the user is not a member of raises NotFound, so its existence does not leak.
    """
    row = db.execute(_PROJECT_AND_ROLE, {"user_id": user.id, "slug": slug}).first()
    project, role = row if row is not None else (None, None)
    if project is not None and user.is_admin:
        role = "manager"
    if project is None or role is None:
        raise NotFound(f"project {slug!r} not found")
    if need == "reviewer" and role not in REVIEW_ROLES:
        raise PermissionDenied(f"this action needs the reviewer or manager role in project {slug!r}")
    if need == "manager" and role not in MANAGE_ROLES:
        raise PermissionDenied(f"this action needs the manager role in project {slug!r}")
    return project


def list_projects_for(db: Session, user: User, page: PageRequest) -> tuple[list[Project], int]:
    query = select(Project)
    if not user.is_admin:
        query = query.join(ProjectMember, ProjectMember.project_id == Project.id).where(
            ProjectMember.user_id == user.id
        )
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    projects = db.scalars(query.order_by(Project.id).offset(page.offset).limit(page.page_size)).all()
    return list(projects), total


def add_member(db: Session, project: Project, user: User, role: str) -> ProjectMember:
    if role not in MEMBER_ROLES:
        raise InvalidInput(f"invalid member role {role!r}: use one of {', '.join(MEMBER_ROLES)}")
    member = db.scalar(
        select(ProjectMember).where(ProjectMember.project_id == project.id, ProjectMember.user_id == user.id)
    )
    if member is None:
        member = ProjectMember(project_id=project.id, user_id=user.id, role=role)
        db.add(member)
    else:
        member.role = role
    db.flush()

    log.info("project member set", project_id=project.id, user_id=user.id, role=role)
    return member


def list_members(db: Session, project: Project) -> list[tuple[ProjectMember, User]]:
    rows = db.execute(
        select(ProjectMember, User).join(User, User.id == ProjectMember.user_id)
        .where(ProjectMember.project_id == project.id).order_by(User.username)
    ).all()
    return [(member, user) for member, user in rows]


def remove_member(db: Session, project: Project, user: User) -> None:
    member = db.scalar(
        select(ProjectMember).where(ProjectMember.project_id == project.id, ProjectMember.user_id == user.id)
    )
    if member is None:
        raise NotFound(f"user {user.username!r} is not a member of project {project.slug!r}")
    db.delete(member)
    db.flush()
    log.info("project member removed", project_id=project.id, user_id=user.id)


def status_counts(db: Session, project_ids: list[int]) -> dict[int, dict[str, int]]:
    """Return {project id: {status: item count, "total": n}} for the given projects."""
    from app.items.models import Item

    counts: dict[int, dict[str, int]] = {project_id: {"total": 0} for project_id in project_ids}
    if not project_ids:
        return counts
    rows = db.execute(
        select(Item.project_id, Item.status, func.count()).where(Item.project_id.in_(project_ids))
        .group_by(Item.project_id, Item.status)
    ).all()
    for project_id, status, count in rows:
        counts[project_id][status] = count
        counts[project_id]["total"] += count
    return counts
