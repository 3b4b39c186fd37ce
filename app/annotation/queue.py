"""The assignment queue: lease the next item to an annotator, skip items, explain an empty queue.

Invariants, kept inside one write transaction per call:
- an item is leased only while its live submissions plus unexpired active leases are fewer than
  the project's annotations_per_item;
- an annotator has at most one unexpired lease per project and is never leased an item they
  submitted. Items they skipped come back only when nothing else is open to them;
- on PostgreSQL the item row is claimed with SELECT ... FOR UPDATE SKIP LOCKED and the count is
  read again under that lock; on SQLite the write transaction (BEGIN IMMEDIATE) serializes claims.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Row, and_, bindparam, exists, func, select, text
from sqlalchemy.orm import Session, aliased

from app.annotation.models import Annotation, Assignment
from app.annotation.questions import load_settings
from app.auth.models import User
from app.config import get_settings
from app.db_write import write_object
from app.errors import Conflict, NotFound
from app.items.models import Item
from app.logging import get_logger
from app.projects.models import Project
from app.web.labels import N_

log = get_logger(__name__)

ALL_DONE = "all_done"
IN_PROGRESS = "in_progress"
WAITING_REVIEW = "waiting_review"
EMPTY_QUEUE_MESSAGES = {
    ALL_DONE: N_("All done: there is nothing left for you to annotate in this project."),
    # One literal each: the catalog extractor reads only the first of adjacent string literals.
    IN_PROGRESS: N_("Nothing for you right now: the remaining items are in progress with other annotators. Try again later; an item comes back when its lease expires or its annotator skips it."),
    WAITING_REVIEW: N_("Nothing to annotate right now: the remaining items are waiting for review. Items whose annotations are all rejected come back to the queue."),
}
# Annotation statuses that count as "this person submitted the item".
SUBMITTED_STATUSES = ("submitted", "accepted", "rejected")
# Attempts to claim an item on PostgreSQL before giving up. An attempt fails only when another
# transaction filled the item between our read and our lock (rare in the 32-annotator tests).
MAX_CLAIM_ATTEMPTS = 20


@dataclass(frozen=True)
class NextResult:
    """The leased item, or None with the reason the queue is empty for this annotator."""

    item: Item | None
    assignment: Assignment | None
    resumed: bool = False
    reason: str | None = None
    # True when the user never held this item before, so they cannot have a draft of it yet.
    first_lease: bool = False


def lease_seconds(project: Project) -> int:
    return load_settings(project).lease_s or get_settings().lease_s


def _is_postgres(db: Session) -> bool:
    return db.get_bind().dialect.name == "postgresql"


def _active_lease_count(now):
    """Correlated count of unexpired active leases on the outer query's item."""
    return (
        select(func.count()).select_from(Assignment)
        .where(Assignment.item_id == Item.id, Assignment.status == "active", Assignment.expires_at > now)
        .scalar_subquery()
    )


def _submitted_by(user_id):
    return exists().where(
        Annotation.item_id == Item.id, Annotation.user_id == user_id, Annotation.status.in_(SUBMITTED_STATUSES)
    )


def _build_open_item_query(*, skipped: bool, top_level: bool):
    """Build the query for the first item, by id, of one priority level that has room for one
    more annotator and that the user may take, with the id of the user's assignment of it.

    Parameters: project_id, user_id, now, needed (the project's annotations_per_item) and, unless
    top_level, priority. With top_level the query finds the highest level itself, which saves a
    statement on the usual path. Walking one level at a time keeps to the (project_id, status,
    priority, id) index: ordering by priority descending and id ascending at once would sort every
    open item. Built once at import, because building a statement this size costs more than running it.
    """
    user_id = bindparam("user_id")
    mine = aliased(Assignment)
    if skipped:
        own_assignment = exists().where(mine.item_id == Item.id, mine.user_id == user_id, mine.status == "skipped")
    else:
        own_assignment = ~exists().where(
            mine.item_id == Item.id, mine.user_id == user_id, mine.status.in_(("submitted", "skipped"))
        )
    level = _TOP_LEVEL.scalar_subquery() if top_level else bindparam("priority")
    # The user's assignment of the item, if any (an expired or a skipped lease), so leasing it
    # needs no second lookup.
    own = aliased(Assignment)
    own_assignment_id = select(own.id).where(own.item_id == Item.id, own.user_id == user_id).scalar_subquery()
    return (
        select(Item, own_assignment_id)
        .where(
            Item.project_id == bindparam("project_id"), Item.status == "new", Item.priority == level,
            Item.annotation_count + _active_lease_count(bindparam("now")) < bindparam("needed"),
            own_assignment, ~_submitted_by(user_id),
        )
        .order_by(Item.id)
        .limit(1)
    )


# The highest priority among new items, and the next one below a given level.
_TOP_LEVEL = (
    select(Item.priority).where(Item.project_id == bindparam("project_id"), Item.status == "new")
    .order_by(Item.priority.desc()).limit(1)
)
_LEVEL_BELOW = (
    select(Item.priority).where(
        Item.project_id == bindparam("project_id"), Item.status == "new", Item.priority < bindparam("below"),
    ).order_by(Item.priority.desc()).limit(1)
)
# Keyed by (skipped, top_level).
_OPEN_ITEM = {
    (skipped, top): _build_open_item_query(skipped=skipped, top_level=top) for skipped in (False, True)
    for top in (False, True)
}
_CLAIM_ITEM = {key: query.with_for_update(skip_locked=True, of=Item) for key, query in _OPEN_ITEM.items()}
_CURRENT_LEASE = (
    select(Assignment).where(
        Assignment.project_id == bindparam("project_id"), Assignment.user_id == bindparam("user_id"),
        Assignment.status == "active", Assignment.expires_at > bindparam("now"),
    ).order_by(Assignment.leased_at.desc()).limit(1)
)
_ASSIGNMENT = select(Assignment).where(
    Assignment.item_id == bindparam("item_id"), Assignment.user_id == bindparam("user_id")
)
_ROOM = select(Item.status, Item.annotation_count + _active_lease_count(bindparam("now"))).where(
    Item.id == bindparam("item_id")
)


def _queue_params(project: Project, user_id: int, now: datetime) -> dict:
    return {"project_id": project.id, "user_id": user_id, "now": now, "needed": project.annotations_per_item}


def current_lease(db: Session, project: Project, user: User, now: datetime) -> Assignment | None:
    return db.scalar(_CURRENT_LEASE, {"project_id": project.id, "user_id": user.id, "now": now})


def _has_room(db: Session, item_id: int, needed: int, now: datetime) -> bool:
    """Count again under the item's row lock; READ COMMITTED gives this statement a fresh view."""
    status, taken = db.execute(_ROOM, {"item_id": item_id, "now": now}).one()
    return status == "new" and taken < needed


def _lock_first(db: Session, query, params: dict) -> tuple[Row | None, bool]:
    """Lock the first open item on PostgreSQL and count its room again under the lock.

    The claim runs in a savepoint. An item that filled up meanwhile is unlocked again by rolling
    the savepoint back, because its lock would otherwise last until this request ends and delay
    the annotator who is submitting that item.
    """
    savepoint = db.begin_nested()
    row = db.execute(query, params).first()
    if row is not None and not _has_room(db, row[0].id, params["needed"], params["now"]):
        savepoint.rollback()
        return row, False
    savepoint.commit()
    return row, True


def _find_open_item(db: Session, params: dict, *, skipped: bool, claim: bool) -> Row | None:
    """Walk the priority levels from the highest down and return the first open item.

    The row holds the item and the id of the user's assignment of it (None for a first lease).
    With claim on PostgreSQL the item row is locked (FOR UPDATE SKIP LOCKED) and its room is
    counted again under the lock, so an item that filled up meanwhile is passed over (_lock_first).
    """
    lock = claim and _is_postgres(db)
    queries = _CLAIM_ITEM if lock else _OPEN_ITEM
    level = None  # None: the top level, which the first query finds itself
    while True:
        query = queries[skipped, level is None]
        level_params = params if level is None else {**params, "priority": level}
        for _ in range(MAX_CLAIM_ATTEMPTS):
            if lock:
                row, has_room = _lock_first(db, query, level_params)
            else:
                row, has_room = db.execute(query, level_params).first(), True
            if row is None:
                break
            if has_room:
                return row
        else:
            log.warning("queue claim gave up", project_id=params["project_id"], user_id=params["user_id"])
            return None
        if level is None:
            level = db.scalar(_TOP_LEVEL, params)
            if level is None:
                return None
        level = db.scalar(_LEVEL_BELOW, {**params, "below": level})
        if level is None:
            return None


def _claim_one(db: Session, project: Project, user_id: int, now: datetime, *, skipped: bool) -> Row | None:
    return _find_open_item(db, _queue_params(project, user_id, now), skipped=skipped, claim=True)


def _lease(
    db: Session, project: Project, user_id: int, item_id: int, assignment_id: int | None, now: datetime,
) -> Assignment:
    """Lease the item to the user, reusing their earlier assignment of it when there is one."""
    expires_at = now + timedelta(seconds=lease_seconds(project))
    if assignment_id is None:
        assignment = Assignment(
            project_id=project.id, item_id=item_id, user_id=user_id, status="active",
            leased_at=now, expires_at=expires_at, updated_at=now,
        )
    else:
        assignment = db.get_one(Assignment, assignment_id)
        assignment.status = "active"
        assignment.leased_at = now
        assignment.expires_at = expires_at
    write_object(db, assignment)
    return assignment


def _serialize_user(db: Session, project: Project, user_id: int) -> None:
    """Make one annotator's concurrent next requests (a double click) run one after the other."""
    if _is_postgres(db):
        db.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": project.id, "b": user_id})


def next_item(db: Session, project: Project, user: User, now: datetime) -> NextResult:
    """Lease the next item to the user, or return the one they already hold with a fresh expiry."""
    _serialize_user(db, project, user.id)

    held = current_lease(db, project, user, now)
    if held is not None:
        held.expires_at = now + timedelta(seconds=lease_seconds(project))
        write_object(db, held)
        return NextResult(item=db.get(Item, held.item_id), assignment=held, resumed=True)

    for skipped in (False, True):
        row = _claim_one(db, project, user.id, now, skipped=skipped)
        if row is not None:
            item, assignment_id = row
            assignment = _lease(db, project, user.id, item.id, assignment_id, now)
            log.info("item leased", project_id=project.id, item_id=item.id, user_id=user.id, skipped=skipped)
            return NextResult(item=item, assignment=assignment, first_lease=assignment_id is None)

    return NextResult(item=None, assignment=None, reason=empty_queue_reason(db, project, user, now))


def has_open_item(db: Session, project: Project, user: User, now: datetime) -> bool:
    """Return whether next_item would lease an item, without writing anything."""
    params = _queue_params(project, user.id, now)
    return any(
        _find_open_item(db, params, skipped=skipped, claim=False) is not None for skipped in (False, True)
    )


def empty_queue_reason(db: Session, project: Project, user: User, now: datetime) -> str:
    """Explain why nothing is open to the user: in progress elsewhere, waiting for review, or done."""
    others_leasing = exists().where(
        Assignment.item_id == Item.id, Assignment.user_id != user.id,
        Assignment.status == "active", Assignment.expires_at > now,
    )
    in_progress = db.scalar(
        select(Item.id).where(
            Item.project_id == project.id, Item.status == "new", others_leasing, ~_submitted_by(user.id),
        ).limit(1)
    )
    if in_progress is not None:
        return IN_PROGRESS
    waiting = db.scalar(
        select(Item.id).where(
            Item.project_id == project.id, Item.status == "annotated", ~_submitted_by(user.id),
        ).limit(1)
    )
    return WAITING_REVIEW if waiting is not None else ALL_DONE


def skip_item(db: Session, project: Project, user: User, item: Item) -> Assignment:
    """Give the item back to the pool; the user sees it again only when nothing else is open."""
    assignment = lease_for(db, item, user)
    if assignment is None:
        raise NotFound(f"item {item.id} is not leased to you: take an item with 'Next item' first")
    if assignment.status == "submitted":
        raise Conflict(f"item {item.id} is already submitted: open it from your submissions to change it")
    if assignment.status != "skipped":
        assignment.status = "skipped"
        write_object(db, assignment)
        log.info("item skipped", project_id=project.id, item_id=item.id, user_id=user.id)
    return assignment


@dataclass(frozen=True)
class Progress:
    project_done: int
    project_total: int
    mine: int
    mine_remaining: int

    @property
    def mine_total(self) -> int:
        return self.mine + self.mine_remaining


def progress(db: Session, project: Project, user: User) -> Progress:
    """Count the project's finished items, and the user's submissions against what is left to them."""
    by_status = dict(
        db.execute(
            select(Item.status, func.count()).where(Item.project_id == project.id).group_by(Item.status)
        ).all()
    )
    mine = db.scalar(
        select(func.count()).select_from(Annotation).where(
            Annotation.project_id == project.id, Annotation.user_id == user.id,
            Annotation.status.in_(SUBMITTED_STATUSES),
        )
    ) or 0
    # New items the user has not submitted: counted as all new items less the user's submissions
    # on new items, so both counts stay on indexes instead of a subquery per item.
    mine_on_new = db.scalar(
        select(func.count()).select_from(Annotation).join(Item, Item.id == Annotation.item_id).where(
            Annotation.project_id == project.id, Annotation.user_id == user.id,
            Annotation.status.in_(SUBMITTED_STATUSES), Item.status == "new",
        )
    ) or 0
    remaining = by_status.get("new", 0) - mine_on_new
    total = sum(by_status.values())
    return Progress(
        project_done=total - by_status.get("new", 0), project_total=total, mine=mine, mine_remaining=remaining,
    )


def lease_for(db: Session, item: Item, user: User) -> Assignment | None:
    return db.scalar(_ASSIGNMENT, {"item_id": item.id, "user_id": user.id})


def lease_is_live(assignment: Assignment | None, now: datetime) -> bool:
    return assignment is not None and assignment.status == "active" and assignment.expires_at > now


def others_holding(db: Session, item: Item, user_id: int, now: datetime) -> int:
    return db.scalar(
        select(func.count()).select_from(Assignment).where(
            and_(
                Assignment.item_id == item.id, Assignment.user_id != user_id,
                Assignment.status == "active", Assignment.expires_at > now,
            )
        )
    ) or 0
