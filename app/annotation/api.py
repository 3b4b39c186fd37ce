"""REST routes of the annotation queue and of one's own annotations."""

from fastapi import APIRouter, Response

from app.annotation import queue, service
from app.annotation.schemas import (
    AnnotationIn,
    AnnotationOut,
    HistoryOut,
    LeaseOut,
    NextOut,
    ProgressOut,
    annotation_out,
)
from app.db import skip_commit_flush, utcnow
from app.deps import DB, ApiUser, TransactionRoute, short_write
from app.i18n.catalog import translate
from app.i18n.locales import choose_locale
from app.items.schemas import ItemDetailOut, item_out
from app.items.service import get_item
from app.projects.service import get_project_for

router = APIRouter(prefix="/api/v1/projects/{project}", tags=["annotation"], route_class=TransactionRoute)


@router.post("/queue/next")
@short_write
def next_item(project: str, db: DB, user: ApiUser) -> NextOut:
    """Lease the next item to you, or return the one you hold; item is null when none is open to you."""
    target = get_project_for(db, user, project)
    # A lease lost in a database crash costs nothing, because the annotator can take the item again.
    skip_commit_flush(db)
    result = queue.next_item(db, target, user, utcnow())
    if result.item is None:
        locale = choose_locale(user.locale, None)
        return NextOut(
            item=None, lease=None, reason=result.reason,
            message=translate(locale, queue.EMPTY_QUEUE_MESSAGES[result.reason]),
        )

    # Annotations are only saved under a lease, so a first lease has none to return.
    annotation = None if result.first_lease else service.own_annotation(db, result.item.id, user.id)
    return NextOut(
        item=ItemDetailOut(**item_out(result.item, service.item_candidates(db, result.item.id))),
        lease=LeaseOut(
            leased_at=result.assignment.leased_at, expires_at=result.assignment.expires_at, resumed=result.resumed,
        ),
        annotation=annotation_out(annotation) if annotation is not None else None,
    )


@router.get("/queue/progress")
def progress(project: str, db: DB, user: ApiUser) -> ProgressOut:
    target = get_project_for(db, user, project)
    counts = queue.progress(db, target, user)
    return ProgressOut(
        project_done=counts.project_done, project_total=counts.project_total, mine=counts.mine,
        mine_remaining=counts.mine_remaining,
    )


@router.post("/items/{item_id}/skip", status_code=204)
@short_write
def skip(project: str, item_id: int, db: DB, user: ApiUser) -> Response:
    target = get_project_for(db, user, project)
    queue.skip_item(db, target, user, get_item(db, target, item_id))
    return Response(status_code=204)


@router.get("/items/{item_id}/annotation")
def get_annotation(project: str, item_id: int, db: DB, user: ApiUser) -> AnnotationOut:
    """Your own annotation of the item, draft or submitted."""
    target = get_project_for(db, user, project)
    item = get_item(db, target, item_id)
    return annotation_out(service.get_own_annotation(db, target, item, user))


@router.put("/items/{item_id}/annotation/draft")
@short_write
def save_draft(project: str, item_id: int, body: AnnotationIn, db: DB, user: ApiUser) -> AnnotationOut:
    """Store unfinished work. Send the version you edited, because a stale version is rejected with 409."""
    target = get_project_for(db, user, project)
    return annotation_out(service.save_draft(db, target, item_id, user, body, utcnow()))


@router.post("/items/{item_id}/annotation")
@short_write
def submit(project: str, item_id: int, body: AnnotationIn, db: DB, user: ApiUser, response: Response) -> AnnotationOut:
    """Submit, or change a submission until it is reviewed.

    Send the version you edited (409 when it is stale) and a submit_token: repeating the request
    with the same token returns the stored annotation with the header Idempotent-Replayed: true.
    """
    target = get_project_for(db, user, project)
    annotation, replayed = service.submit(db, target, item_id, user, body, utcnow())
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return annotation_out(annotation)


@router.get("/items/{item_id}/annotation/history")
def history(project: str, item_id: int, db: DB, user: ApiUser) -> list[HistoryOut]:
    """Every saved version of your annotation of the item, oldest first."""
    target = get_project_for(db, user, project)
    item = get_item(db, target, item_id)
    annotation = service.get_own_annotation(db, target, item, user)
    return [
        HistoryOut(
            version=entry.version, status=entry.status, username=username, data=entry.data,
            created_at=entry.created_at,
        )
        for entry, username in service.list_history(db, annotation)
    ]
