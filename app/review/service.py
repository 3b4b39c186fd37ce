"""Review: list submitted annotations oldest first, and accept or reject them.

A reviewer decides on other people's annotations only, unless the project allows self-review.

An accepted annotation makes its item "accepted" once as many people as the project needs have
submitted. When every annotation of an item is rejected, the item goes back to the queue as "new".
It then waits for fresh annotations from people who have not annotated it yet (the rules are in
app.annotation.service.refresh_item_status).
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.annotation.models import Annotation
from app.annotation.service import lock_item, record_version, refresh_item_status
from app.auth.models import User
from app.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from app.items.models import Candidate, Item
from app.logging import get_logger
from app.pagination import PageRequest
from app.projects.models import Project
from app.review.models import Review

log = get_logger(__name__)

DECISION_STATUSES = {"accept": "accepted", "reject": "rejected"}
MAX_COMMENT_CHARS = 10_000


@dataclass(frozen=True)
class PendingRow:
    annotation: Annotation
    item: Item
    annotator: str


def list_pending(
    db: Session, project: Project, reviewer: User, page: PageRequest,
) -> tuple[list[PendingRow], int]:
    """Submitted annotations that wait for the reviewer's decision, oldest submission first.

    The reviewer's own annotations are left out unless the project allows self-review.
    """
    where = (Annotation.project_id == project.id, Annotation.status == "submitted")
    if not project.self_review:
        where += (Annotation.user_id != reviewer.id,)
    total = db.scalar(select(func.count()).select_from(Annotation).where(*where)) or 0
    rows = db.execute(
        select(Annotation, Item, User.username)
        .join(Item, Item.id == Annotation.item_id).join(User, User.id == Annotation.user_id)
        .where(*where).order_by(Annotation.submitted_at, Annotation.id)
        .offset(page.offset).limit(page.page_size)
    ).all()
    return [PendingRow(annotation, item, username) for annotation, item, username in rows], total


def candidates_by_item(db: Session, item_ids: list[int]) -> dict[int, list[Candidate]]:
    grouped: dict[int, list[Candidate]] = {item_id: [] for item_id in item_ids}
    if item_ids:
        for candidate in db.scalars(
            select(Candidate).where(Candidate.item_id.in_(item_ids)).order_by(Candidate.id)
        ):
            grouped[candidate.item_id].append(candidate)
    return grouped


def get_annotation(db: Session, project: Project, annotation_id: int) -> Annotation:
    annotation = db.get(Annotation, annotation_id)
    if annotation is None or annotation.project_id != project.id:
        raise NotFound(f"annotation {annotation_id} not found in project {project.slug!r}")
    return annotation


def own_pending_count(db: Session, project: Project, reviewer: User) -> int:
    """Count the reviewer's own submitted annotations, which list_pending leaves out without self-review."""
    if project.self_review:
        return 0
    return db.scalar(
        select(func.count()).select_from(Annotation).where(
            Annotation.project_id == project.id, Annotation.status == "submitted", Annotation.user_id == reviewer.id,
        )
    ) or 0


def decide(
    db: Session, project: Project, annotation_id: int, reviewer: User, *, decision: str, comment: str = "",
    version: int | None = None, now: datetime,
) -> Review:
    """Accept or reject a submitted annotation; version, when given, must be the one the reviewer saw."""
    if decision not in DECISION_STATUSES:
        raise InvalidInput(f"invalid decision {decision!r}: use accept or reject")
    if len(comment) > MAX_COMMENT_CHARS:
        raise InvalidInput(f"comment longer than {MAX_COMMENT_CHARS} characters: shorten it")
    annotation = get_annotation(db, project, annotation_id)
    if annotation.user_id == reviewer.id and not project.self_review:
        raise PermissionDenied(
            f"annotation {annotation_id} is your own: another reviewer must decide on it, or a manager can "
            "allow self-review in the project's settings"
        )
    item = lock_item(db, annotation.item_id)
    db.refresh(annotation)
    if annotation.status != "submitted":
        raise Conflict(
            f"annotation {annotation_id} is {annotation.status}, so it no longer waits for review: reload the list"
        )
    if version is not None and version != annotation.version:
        raise Conflict(
            f"annotation {annotation_id} was changed by its annotator since you loaded it (you saw version "
            f"{version}, it is now version {annotation.version}): reload and review the new version"
        )

    annotation.status = DECISION_STATUSES[decision]
    record_version(db, annotation, reviewer.id, now)
    review = Review(
        annotation_id=annotation.id, reviewer_id=reviewer.id, decision=decision, comment=comment.strip(),
        created_at=now,
    )
    db.add(review)
    db.flush()
    refresh_item_status(db, project, item, now)

    log.info(
        "annotation reviewed", project_id=project.id, annotation_id=annotation.id, item_id=item.id,
        reviewer_id=reviewer.id, decision=decision, item_status=item.status,
    )
    return review


def list_reviews(db: Session, annotation: Annotation) -> list[tuple[Review, str | None]]:
    rows = db.execute(
        select(Review, User.username).outerjoin(User, User.id == Review.reviewer_id)
        .where(Review.annotation_id == annotation.id).order_by(Review.created_at, Review.id)
    ).all()
    return [(review, username) for review, username in rows]
