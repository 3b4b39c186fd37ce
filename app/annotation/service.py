"""Annotations: drafts, submissions, edits until review, history, and the item status they drive.

Every save checks the version the annotator edited against the stored one, so a save from a stale
tab is rejected (Conflict, HTTP 409) instead of overwriting newer work. A submit carries a
submit_token; repeating a submit with the same token returns the stored annotation unchanged.
Each new version of an annotation gets an AnnotationHistory row with who saved it and when.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.annotation import queue
from app.annotation.models import Annotation, AnnotationHistory, Assignment
from app.annotation.questions import AnnotationSettings, load_settings
from app.annotation.schemas import AnnotationIn
from app.annotation.task import ItemTask, build_task
from app.auth.models import User
from app.config import get_settings
from app.db_write import write_object
from app.errors import Conflict, InvalidInput, NotFound
from app.items.models import Candidate, Item
from app.logging import get_logger
from app.pagination import PageRequest
from app.projects.models import Project

log = get_logger(__name__)

REVIEWED_STATUSES = ("accepted", "rejected")


# Built once: constructing a statement costs about as much as running it on SQLite.
_OWN_ANNOTATION = select(Annotation).where(
    Annotation.item_id == bindparam("item_id"), Annotation.user_id == bindparam("user_id")
)
# The user's lease of an item with their annotation of it, in one statement. save_draft and submit
# store an annotation only under a lease, and assignments are never deleted on their own, so the
# assignment row exists whenever the annotation does.
_OWN_WORK = (
    select(Assignment, Annotation)
    .outerjoin(Annotation, and_(Annotation.item_id == Assignment.item_id, Annotation.user_id == Assignment.user_id))
    .where(Assignment.item_id == bindparam("item_id"), Assignment.user_id == bindparam("user_id"))
)
_CANDIDATES = select(Candidate).where(Candidate.item_id == bindparam("item_id")).order_by(Candidate.id)
_STATUS_COUNTS = (
    select(Annotation.status, func.count()).where(Annotation.item_id == bindparam("item_id"))
    .group_by(Annotation.status)
)


def own_annotation(db: Session, item_id: int, user_id: int) -> Annotation | None:
    return db.scalar(_OWN_ANNOTATION, {"item_id": item_id, "user_id": user_id})


def own_work(db: Session, item_id: int, user_id: int) -> tuple[Assignment | None, Annotation | None]:
    """Return the user's assignment of the item and their annotation of it, each None if missing."""
    row = db.execute(_OWN_WORK, {"item_id": item_id, "user_id": user_id}).first()
    if row is None:
        return None, None
    return row[0], row[1]


def item_candidates(db: Session, item_id: int) -> list[Candidate]:
    return list(db.scalars(_CANDIDATES, {"item_id": item_id}))


def task_for(db: Session, settings: AnnotationSettings, item: Item, user_id: int) -> ItemTask:
    return build_task(settings, item.id, user_id, item_candidates(db, item.id))


def _task_to_check(db: Session, settings: AnnotationSettings, item: Item, user_id: int, data: AnnotationIn) -> ItemTask:
    """Build the task, loading its candidates only when the input or a required question refers to them."""
    needs_candidates = (
        data.ranking or data.choice is not None or data.base_candidate_id is not None
        or (settings.ranking.enabled and settings.ranking.required)
        or (settings.pairwise.enabled and settings.pairwise.required)
    )
    if needs_candidates:
        return task_for(db, settings, item, user_id)
    return build_task(settings, item.id, user_id, [])


def lock_item(db: Session, item_id: int) -> Item | None:
    """Load the item, or None if there is none, holding its row lock on PostgreSQL.

    On SQLite the write transaction already excludes every other writer.
    """
    if db.get_bind().dialect.name != "postgresql":
        return db.get(Item, item_id)
    return db.scalars(
        select(Item).where(Item.id == item_id).with_for_update().execution_options(populate_existing=True)
    ).one_or_none()


def lock_project_item(db: Session, project: Project, item_id: int) -> Item:
    """Load the project's item with its row lock (see lock_item), or raise NotFound."""
    item = lock_item(db, item_id)
    if item is None or item.project_id != project.id:
        raise NotFound(f"item {item_id} not found in project {project.slug!r}")
    return item


def ensure_visible(db: Session, item: Item, user: User) -> None:
    """Raise NotFound unless the item was leased to the user or the user annotated it."""
    if own_work(db, item.id, user.id) == (None, None):
        raise NotFound(f"item {item.id} is not assigned to you: take an item with 'Next item'")


def _check_version(item_id: int, annotation: Annotation | None, version: int) -> None:
    current = annotation.version if annotation is not None else 0
    if version != current:
        raise Conflict(
            f"the annotation of item {item_id} was changed elsewhere, for example in another tab "
            f"(you edited version {version}, the stored one is version {current}): reload to see the "
            "latest version, then make your change again",
            current_version=current,
        )


def _validation_problems(data: AnnotationIn, settings: AnnotationSettings, task: ItemTask) -> list[str]:
    problems = []
    criteria = settings.criterion_keys()
    scale = settings.scale()
    for key, score in data.ratings.items():
        if key not in criteria:
            problems.append(f"unknown rubric criterion {key!r}: use one of {criteria}")
        elif score not in scale:
            problems.append(f"invalid score {score} for {key!r}: use {scale.start} to {scale.stop - 1}")

    ranked_ids = {str(c.id) for c in task.ranked}
    for candidate_id, rank in data.ranking.items():
        if candidate_id not in ranked_ids:
            problems.append(f"candidate {candidate_id} is not ranked on this item: rank {sorted(ranked_ids)}")
        elif not 1 <= rank <= len(ranked_ids):
            problems.append(f"invalid rank {rank} for candidate {candidate_id}: use 1 to {len(ranked_ids)}")

    if data.choice is not None:
        shown = {c.id for c in task.pair} if task.pair else set()
        if {data.choice.preferred, data.choice.other} != shown or data.choice.preferred == data.choice.other:
            problems.append(
                f"invalid choice {data.choice.model_dump()}: pick one of the two candidates shown, {sorted(shown)}"
            )

    known_flags = settings.flag_keys()
    problems += [f"unknown flag {flag!r}: use one of {known_flags}" for flag in data.flags if flag not in known_flags]
    if data.base_candidate_id is not None and task.candidate(data.base_candidate_id) is None:
        problems.append(f"candidate {data.base_candidate_id} does not belong to this item")
    max_chars = get_settings().max_text_chars
    if data.response is not None and len(data.response) > max_chars:
        problems.append(f"response longer than {max_chars} characters (SFTDESK_MAX_TEXT_CHARS)")
    return problems


def _missing_answers(data: AnnotationIn, settings: AnnotationSettings, task: ItemTask) -> list[str]:
    """Required questions left open. A flagged item needs none of them (it may be unanswerable)."""
    if data.flags:
        return []
    missing = []
    if settings.response.enabled and settings.response.required and not (data.response or "").strip():
        missing.append("response: write a response, or set a flag if the prompt cannot be answered")
    if settings.rubric.enabled and settings.rubric.required:
        unrated = [key for key in settings.criterion_keys() if key not in data.ratings]
        if unrated:
            missing.append(f"ratings: rate {', '.join(unrated)}")
    if task.ranked and settings.ranking.required:
        unranked = [str(c.id) for c in task.ranked if str(c.id) not in data.ranking]
        if unranked:
            missing.append(f"ranking: rank candidates {', '.join(unranked)}")
    if task.pair and settings.pairwise.required and data.choice is None:
        missing.append("choice: pick the better of the two candidates")
    return missing


def validate_input(data: AnnotationIn, settings: AnnotationSettings, task: ItemTask, *, complete: bool) -> None:
    problems = _validation_problems(data, settings, task)
    if complete:
        problems += _missing_answers(data, settings, task)
    if problems:
        raise InvalidInput("invalid annotation: " + "; ".join(problems), problems=problems)


def _apply(annotation: Annotation, data: AnnotationIn, settings: AnnotationSettings) -> None:
    annotation.response = data.response if settings.response.enabled else None
    annotation.base_candidate_id = data.base_candidate_id
    annotation.ratings = dict(data.ratings)
    annotation.ranking = dict(data.ranking)
    annotation.choice = data.choice.model_dump() if data.choice is not None else {}
    annotation.flags = sorted(set(data.flags))
    annotation.note = data.note if settings.note.enabled else ""


def history_data(annotation: Annotation) -> dict:
    return {
        "response": annotation.response, "base_candidate_id": annotation.base_candidate_id,
        "ratings": annotation.ratings, "ranking": annotation.ranking, "choice": annotation.choice,
        "flags": annotation.flags, "note": annotation.note,
    }


def record_version(db: Session, annotation: Annotation, user_id: int | None, now: datetime) -> None:
    """Bump the annotation's version, write it, and store that version in its history.

    Both rows are written at once with one statement each (write_object), not by a flush. Run this
    inside unique_annotation() when the annotation may be new.
    """
    annotation.version = (annotation.version or 0) + 1
    annotation.updated_at = now
    write_object(db, annotation)
    write_object(db, AnnotationHistory(
        annotation_id=annotation.id, version=annotation.version, user_id=user_id, status=annotation.status,
        data=history_data(annotation), created_at=now,
    ))


def _new_annotation(project: Project, item: Item, user: User, now: datetime) -> Annotation:
    """Create a draft annotation without adding it to the session; record_version inserts it."""
    return Annotation(
        project_id=project.id, item_id=item.id, user_id=user.id, status="draft", version=0,
        ratings={}, ranking={}, choice={}, flags=[], note="", time_spent_ms=0, created_at=now, updated_at=now,
    )


@contextmanager
def unique_annotation(item_id: int) -> Iterator[None]:
    """Turn a clash on the unique (item_id, user_id) of annotations into a Conflict.

    The clash means a concurrent request of the same user stored the annotation first.
    """
    try:
        yield
    except IntegrityError as error:
        raise Conflict(f"your annotation of item {item_id} was saved by another request: reload the page") from error


def save_draft(db: Session, project: Project, item_id: int, user: User, data: AnnotationIn, now: datetime) -> Annotation:
    """Store unfinished work; required questions may still be open."""
    item = lock_project_item(db, project, item_id)
    assignment, annotation = own_work(db, item.id, user.id)
    if annotation is not None and annotation.status != "draft":
        raise Conflict(
            f"the annotation of item {item.id} is already {annotation.status}: drafts are only for "
            "unsubmitted work, so save your changes with submit"
        )
    _check_version(item.id, annotation, data.version)
    if annotation is None and assignment is None:
        raise NotFound(f"item {item.id} is not leased to you: take an item with 'Next item' first")

    settings = load_settings(project)
    validate_input(data, settings, _task_to_check(db, settings, item, user.id, data), complete=False)

    if annotation is None:
        annotation = _new_annotation(project, item, user, now)
    _apply(annotation, data, settings)
    with unique_annotation(item.id):
        record_version(db, annotation, user.id, now)
    return annotation


def _check_may_submit(
    db: Session, project: Project, item: Item, user: User, assignment: Assignment | None, now: datetime,
) -> Assignment:
    """Return the user's lease for a first submission; an expired one still counts while the item has room."""
    if assignment is None:
        raise NotFound(f"item {item.id} is not leased to you: take an item with 'Next item' first")
    if queue.lease_is_live(assignment, now):
        return assignment
    full = item.annotation_count + queue.others_holding(db, item, user.id, now) >= project.annotations_per_item
    if item.status != "new" or full:
        raise Conflict(
            f"your lease on item {item.id} expired and the item went to other annotators: your draft is "
            "kept, but it can no longer be submitted. Take the next item."
        )
    return assignment


def submit(
    db: Session, project: Project, item_id: int, user: User, data: AnnotationIn, now: datetime,
) -> tuple[Annotation, bool]:
    """Submit or change an annotation; return it and whether this was a repeat of an earlier submit."""
    item = lock_project_item(db, project, item_id)
    assignment, annotation = own_work(db, item.id, user.id)
    if annotation is not None and data.submit_token and annotation.submit_token == data.submit_token:
        return annotation, True
    if annotation is not None and annotation.status in REVIEWED_STATUSES:
        raise Conflict(
            f"the annotation of item {item.id} is already {annotation.status} by review: it can no longer be changed"
        )
    _check_version(item.id, annotation, data.version)
    first = annotation is None or annotation.status == "draft"
    if first:
        assignment = _check_may_submit(db, project, item, user, assignment, now)
        # Counted before this submission is stored, so the item's status is written without a recount.
        counts = status_counts(db, item.id)

    settings = load_settings(project)
    validate_input(data, settings, _task_to_check(db, settings, item, user.id, data), complete=True)

    if annotation is None:
        annotation = _new_annotation(project, item, user, now)
    _apply(annotation, data, settings)
    annotation.submit_token = data.submit_token
    if first:
        annotation.status = "submitted"
        annotation.submitted_at = now
        annotation.time_spent_ms = max(0, int((now - assignment.leased_at).total_seconds() * 1000))
        counts["submitted"] = counts.get("submitted", 0) + 1
    with unique_annotation(item.id):
        record_version(db, annotation, user.id, now)
    if first:
        assignment.status = "submitted"
        write_object(db, assignment)
        set_item_status(db, project, item, counts, now)
        write_object(db, item)

    log.info(
        "annotation submitted" if first else "annotation changed",
        project_id=project.id, item_id=item.id, annotation_id=annotation.id, user_id=user.id,
        version=annotation.version,
    )
    return annotation, False


def status_counts(db: Session, item_id: int) -> dict[str, int]:
    """Count the item's annotations by status."""
    return dict(db.execute(_STATUS_COUNTS, {"item_id": item_id}).all())


def refresh_item_status(db: Session, project: Project, item: Item, now: datetime) -> None:
    """Recount an item's annotations and set its status. The caller holds the item's row lock."""
    set_item_status(db, project, item, status_counts(db, item.id), now)
    db.flush()


def set_item_status(db: Session, project: Project, item: Item, counts: dict[str, int], now: datetime) -> None:
    """Set the item's status from its annotation counts by status. The caller writes the item.

    new: fewer live (submitted or accepted) annotations than the project needs, which includes an
    item whose annotations were all rejected: it goes back to the pool. annotated: enough live
    annotations, waiting for review. accepted: one annotation is accepted and as many people as
    needed have submitted. When the project does not require review, an item that reaches its
    count has its submitted annotations accepted at once.
    """
    live = counts.get("submitted", 0) + counts.get("accepted", 0)
    needed = project.annotations_per_item
    if live >= needed and not project.review_required and counts.get("submitted", 0):
        for annotation in db.scalars(
            select(Annotation).where(Annotation.item_id == item.id, Annotation.status == "submitted")
        ):
            annotation.status = "accepted"
            record_version(db, annotation, None, now)
        counts = {**counts, "accepted": live, "submitted": 0}

    item.annotation_count = live
    if counts.get("accepted", 0) and live + counts.get("rejected", 0) >= needed:
        item.status = "accepted"
    elif live >= needed:
        item.status = "annotated"
    else:
        item.status = "new"
    item.updated_at = now


def refresh_project_items(db: Session, project: Project, now: datetime) -> int:
    """Recount every item that has annotations, after annotations_per_item or review_required changed."""
    item_ids = db.scalars(
        select(Annotation.item_id).where(Annotation.project_id == project.id).distinct()
    ).all()
    for item_id in item_ids:
        refresh_item_status(db, project, lock_item(db, item_id), now)
    return len(item_ids)


def list_history(db: Session, annotation: Annotation) -> list[tuple[AnnotationHistory, str | None]]:
    rows = db.execute(
        select(AnnotationHistory, User.username)
        .outerjoin(User, User.id == AnnotationHistory.user_id)
        .where(AnnotationHistory.annotation_id == annotation.id)
        .order_by(AnnotationHistory.version)
    ).all()
    return [(entry, username) for entry, username in rows]


def list_own(db: Session, project: Project, user: User, page: PageRequest) -> tuple[list[tuple[Annotation, Item]], int]:
    """Return the user's annotations in the project, newest change first."""
    where = (Annotation.project_id == project.id, Annotation.user_id == user.id)
    total = db.scalar(select(func.count()).select_from(Annotation).where(*where)) or 0
    rows = db.execute(
        select(Annotation, Item).join(Item, Item.id == Annotation.item_id).where(*where)
        .order_by(Annotation.updated_at.desc(), Annotation.id.desc()).offset(page.offset).limit(page.page_size)
    ).all()
    return [(annotation, item) for annotation, item in rows], total


def get_own_annotation(db: Session, project: Project, item: Item, user: User) -> Annotation:
    annotation = own_annotation(db, item.id, user.id)
    if annotation is None or annotation.project_id != project.id:
        raise NotFound(f"you have no annotation of item {item.id}")
    return annotation
