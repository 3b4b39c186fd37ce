"""REST routes of review: the pending list and decisions."""

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from app.annotation.schemas import AnnotationOut, annotation_out
from app.db import utcnow
from app.deps import DB, ApiUser, TransactionRoute
from app.items.models import Item
from app.pagination import Page, Pagination
from app.projects.service import get_project_for
from app.review import service

router = APIRouter(prefix="/api/v1/projects/{project}", tags=["review"], route_class=TransactionRoute)


class PendingOut(BaseModel):
    annotation: AnnotationOut
    item_id: int
    prompt_text: str
    item_status: str


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: str = Field(description="accept or reject")
    comment: str = ""
    version: int | None = Field(None, description="annotation version you reviewed; 409 if it changed since")


class ReviewOut(BaseModel):
    annotation_id: int
    decision: str
    comment: str
    reviewer: str | None
    created_at: datetime
    annotation_status: str
    item_status: str


@router.get("/reviews/pending")
def list_pending(project: str, db: DB, user: ApiUser, page: Pagination) -> Page[PendingOut]:
    """Submitted annotations waiting for your review, oldest first. Your own are left out unless the project allows self-review."""
    target = get_project_for(db, user, project, need="reviewer")
    rows, total = service.list_pending(db, target, user, page)
    return Page[PendingOut].build([
        PendingOut(
            annotation=annotation_out(row.annotation, row.annotator), item_id=row.item.id,
            prompt_text=row.item.prompt_text, item_status=row.item.status,
        )
        for row in rows
    ], total, page)


@router.post("/annotations/{annotation_id}/review", status_code=201)
def review(project: str, annotation_id: int, body: ReviewIn, db: DB, user: ApiUser) -> ReviewOut:
    target = get_project_for(db, user, project, need="reviewer")
    decision = service.decide(
        db, target, annotation_id, user, decision=body.decision, comment=body.comment, version=body.version,
        now=utcnow(),
    )
    annotation = service.get_annotation(db, target, annotation_id)
    item = db.get(Item, annotation.item_id)
    return ReviewOut(
        annotation_id=annotation_id, decision=decision.decision, comment=decision.comment, reviewer=user.username,
        created_at=decision.created_at, annotation_status=annotation.status, item_status=item.status,
    )


@router.get("/annotations/{annotation_id}/reviews")
def list_reviews(project: str, annotation_id: int, db: DB, user: ApiUser) -> list[ReviewOut]:
    target = get_project_for(db, user, project, need="reviewer")
    annotation = service.get_annotation(db, target, annotation_id)
    item = db.get(Item, annotation.item_id)
    return [
        ReviewOut(
            annotation_id=annotation.id, decision=review.decision, comment=review.comment, reviewer=username,
            created_at=review.created_at, annotation_status=annotation.status, item_status=item.status,
        )
        for review, username in service.list_reviews(db, annotation)
    ]
