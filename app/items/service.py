"""Items: import from files and bodies, listing, search and detail."""

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import orjson

from sqlalchemy import func, insert, or_, select, text
from sqlalchemy.orm import Session

from app.db import unit_of_work, utcnow
from app.errors import InvalidInput, NotFound, PayloadTooLarge
from app.items.importing import ImportFormatError, ImportOptions, read_records
from app.items.models import ITEM_STATUSES, Candidate, ImportBatch, ImportRowError, Item
from app.items.records import ImportRecord, RowError, record_hashes
from app.logging import get_logger
from app.pagination import PageRequest
from app.projects.models import Project

log = get_logger(__name__)

# How many rejected rows the import response lists inline; all of them are stored and paginated.
INLINE_ERROR_LIMIT = 100
# First-user-turn characters kept in items.prompt_text for listing and search.
PROMPT_TEXT_CHARS = 2_000
SPOOL_CHUNK_BYTES = 1 << 20


@dataclass
class ImportSummary:
    batch_id: int
    shape: str | None
    created: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "import_id": self.batch_id, "shape": self.shape, "created": self.created,
            "duplicates": self.duplicates, "rejected": self.rejected,
            "errors": self.errors, "errors_listed": len(self.errors),
        }


def _dedup_key(record: ImportRecord, digest: str) -> str:
    return f"ext:{record.external_id}" if record.external_id else f"sha:{digest}"


def _first_user_text(messages: list[dict[str, str]]) -> str:
    for message in messages:
        if message["role"] == "user":
            return message["content"][:PROMPT_TEXT_CHARS]
    return messages[0]["content"][:PROMPT_TEXT_CHARS] if messages else ""


def _candidate_rows(record: ImportRecord) -> list[dict[str, Any]]:
    rows = []
    if record.response:
        rows.append({"text": record.response, "source": "import", "label": "reference", "rank": None})
    if record.chosen is not None:
        rows.append({"text": record.chosen, "source": "import", "label": "chosen", "rank": 1})
    if record.rejected is not None:
        rows.append({"text": record.rejected, "source": "import", "label": "rejected", "rank": 2})
    return rows


class _BatchWriter:
    """Writes parsed rows in batches, one short transaction each.

    Each batch commits on its own so a large import never holds the write lock for long;
    a re-import after a failure skips the rows already stored.
    """

    def __init__(self, project_id: int, summary: ImportSummary, batch_rows: int) -> None:
        self.project_id = project_id
        self.summary = summary
        self.batch_rows = batch_rows
        self.records: list[ImportRecord] = []
        self.errors: list[RowError] = []

    def add(self, row: ImportRecord | RowError) -> None:
        if isinstance(row, RowError):
            self.errors.append(row)
        else:
            self.records.append(row)
        if len(self.records) + len(self.errors) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        if not self.records and not self.errors:
            return
        with unit_of_work() as db:
            self._write_errors(db)
            self._write_records(db)
            batch = db.get(ImportBatch, self.summary.batch_id)
            batch.rows_created = self.summary.created
            batch.rows_duplicate = self.summary.duplicates
            batch.rows_rejected = self.summary.rejected
            batch.shape = self.summary.shape
        self.records.clear()
        self.errors.clear()

    def _write_errors(self, db: Session) -> None:
        if not self.errors:
            return
        db.execute(
            insert(ImportRowError),
            [{"batch_id": self.summary.batch_id, "record": e.record, "reason": e.reason} for e in self.errors],
        )
        for error in self.errors:
            self.summary.rejected += 1
            if len(self.summary.errors) < INLINE_ERROR_LIMIT:
                self.summary.errors.append({"record": error.record, "reason": error.reason})

    def _write_records(self, db: Session) -> None:
        if not self.records:
            return

        keyed: list[tuple[ImportRecord, str, str, str]] = []
        for record in self.records:
            prompt_digest, digest = record_hashes(record.messages, record.response, record.chosen, record.rejected)
            keyed.append((record, _dedup_key(record, digest), digest, prompt_digest))
        existing_keys = set(db.scalars(
            select(Item.dedup_key).where(
                Item.project_id == self.project_id, Item.dedup_key.in_({key for _, key, _, _ in keyed})
            )
        ))
        existing_hashes = set(db.scalars(
            select(Item.content_hash).where(
                Item.project_id == self.project_id, Item.content_hash.in_({digest for _, _, digest, _ in keyed})
            )
        ))

        fresh: list[tuple[ImportRecord, str, str, str]] = []
        for entry in keyed:
            _, key, digest, _ = entry
            if key in existing_keys or digest in existing_hashes:
                self.summary.duplicates += 1
                continue
            existing_keys.add(key)
            existing_hashes.add(digest)
            fresh.append(entry)
        if not fresh:
            return

        _insert_items(db, self.project_id, self.summary.batch_id, fresh)
        self.summary.created += len(fresh)


_ITEM_COLUMNS = (
    "id", "project_id", "external_id", "dedup_key", "content_hash", "prompt_hash", "messages", "prompt_text",
    "tools", "metadata", "status", "priority", "annotation_count", "import_batch_id", "record_number",
    "created_at", "updated_at",
)
_CANDIDATE_COLUMNS = ("item_id", "text", "source", "label", "rank", "created_at")


def _insert_sql(db: Session, table: str, columns: tuple[str, ...]) -> str:
    marker = "?" if db.get_bind().dialect.name == "sqlite" else "%s"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([marker] * len(columns))})"


def _insert_items(db: Session, project_id: int, batch_id: int, fresh: list[tuple[ImportRecord, str, str, str]]) -> None:
    """Insert new items and their imported candidates with the driver's executemany.

    This skips the ORM's per-row work, which costs more than SQLite itself at tens of thousands of
    rows per second. Values go through the same conversions the models use: JSON text from
    orjson and timestamps in the dialect's stored form.
    """
    dialect = db.get_bind().dialect
    timestamp_type = Item.__table__.c.created_at.type.dialect_impl(dialect)
    now = timestamp_type.bind_processor(dialect)(utcnow()) if timestamp_type.bind_processor(dialect) else utcnow()
    item_ids = _allocate_ids(db, len(fresh))

    item_rows = []
    candidate_rows = []
    for item_id, (record, key, digest, prompt_digest) in zip(item_ids, fresh, strict=True):
        messages = [{"role": m.role, "content": m.content} for m in record.messages]
        item_rows.append((
            item_id, project_id, record.external_id, key, digest, prompt_digest,
            orjson.dumps(messages).decode(), _first_user_text(messages), record.tools,
            orjson.dumps(record.metadata).decode(), "new", 0, 0, batch_id, record.record, now, now,
        ))
        candidate_rows += [
            (item_id, c["text"], c["source"], c["label"], c["rank"], now) for c in _candidate_rows(record)
        ]

    cursor = db.connection().connection.cursor()
    try:
        cursor.executemany(_insert_sql(db, "items", _ITEM_COLUMNS), item_rows)
        if candidate_rows:
            cursor.executemany(_insert_sql(db, "candidates", _CANDIDATE_COLUMNS), candidate_rows)
    finally:
        cursor.close()


def _allocate_ids(db: Session, count: int) -> list[int]:
    """Reserve `count` item ids, so the rows can be inserted without RETURNING.

    On SQLite the write transaction holds the database lock (BEGIN IMMEDIATE), so max(id) is stable.
    """
    if db.get_bind().dialect.name == "postgresql":
        return list(db.scalars(
            text("SELECT nextval(pg_get_serial_sequence('items', 'id')) FROM generate_series(1, :n)"), {"n": count}
        ))
    start = (db.scalar(select(func.max(Item.id))) or 0) + 1
    return list(range(start, start + count))


def import_records(
    project: Project, rows: Iterable[ImportRecord | RowError], *, user_id: int | None,
    filename: str | None, shape: str | None, batch_rows: int,
) -> ImportSummary:
    """Store parsed rows in a new import batch and return the counts.

    Commits one transaction per batch of rows (see _BatchWriter); the caller's session is not used.
    """
    with unit_of_work() as db:
        batch = ImportBatch(project_id=project.id, filename=filename, shape=shape, created_by_id=user_id)
        db.add(batch)
        db.flush()
        batch_id = batch.id

    summary = ImportSummary(batch_id=batch_id, shape=shape)
    writer = _BatchWriter(project.id, summary, batch_rows)
    try:
        for row in rows:
            # The parser settles the shape at the first record that decides it.
            summary.shape = getattr(rows, "shape", None) or shape
            writer.add(row)
    except ImportFormatError as error:
        writer.flush()
        log.info("import stopped", project_id=project.id, import_id=batch_id, created=summary.created)
        stored = (
            f" {summary.created} rows before that point were stored (import {batch_id}); importing the"
            " fixed file again skips them." if summary.created else ""
        )
        raise InvalidInput(str(error).rstrip(".") + "." + stored, import_id=batch_id, created=summary.created) from error
    writer.flush()

    log.info(
        "import finished", project_id=project.id, import_id=batch_id, created=summary.created,
        duplicates=summary.duplicates, rejected=summary.rejected,
    )
    return summary


def import_file(
    project: Project, stream: BinaryIO, options: ImportOptions, *, user_id: int | None, batch_rows: int,
) -> ImportSummary:
    """Parse a file and store its rows; a whole-file format problem raises InvalidInput."""
    try:
        rows = read_records(stream, options)
    except ImportFormatError as error:
        raise InvalidInput(str(error)) from error
    return import_records(
        project, rows, user_id=user_id, filename=options.filename, shape=options.shape, batch_rows=batch_rows,
    )


class SpooledBody:
    """Copy an upload to a temporary file on disk, enforcing the size limit while copying."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.file = tempfile.TemporaryFile()

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            self.file.close()
            raise PayloadTooLarge(
                f"upload larger than {self.max_bytes} bytes: split the file or raise SFTDESK_MAX_UPLOAD_BYTES"
            )
        self.file.write(chunk)

    def rewind(self) -> BinaryIO:
        self.file.seek(0)
        return self.file


def list_items(
    db: Session, project: Project, page: PageRequest, *, status: str | None = None, search: str | None = None,
) -> tuple[list[Item], int]:
    query = select(Item).where(Item.project_id == project.id)
    if status:
        if status not in ITEM_STATUSES:
            raise InvalidInput(f"invalid status {status!r}: use one of {', '.join(ITEM_STATUSES)}")
        query = query.where(Item.status == status)
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(or_(
            Item.prompt_text.ilike(pattern, escape="\\"), Item.external_id.ilike(pattern, escape="\\")
        ))
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = db.scalars(query.order_by(Item.id).offset(page.offset).limit(page.page_size)).all()
    return list(items), total


def get_item(db: Session, project: Project, item_id: int) -> Item:
    item = db.get(Item, item_id)
    if item is None or item.project_id != project.id:
        raise NotFound(f"item {item_id} not found in project {project.slug!r}")
    return item


def list_candidates(db: Session, item: Item) -> list[Candidate]:
    return list(db.scalars(select(Candidate).where(Candidate.item_id == item.id).order_by(Candidate.id)))


def get_import_batch(db: Session, project: Project, batch_id: int) -> ImportBatch:
    batch = db.get(ImportBatch, batch_id)
    if batch is None or batch.project_id != project.id:
        raise NotFound(f"import {batch_id} not found in project {project.slug!r}")
    return batch


def list_import_errors(db: Session, batch: ImportBatch, page: PageRequest) -> tuple[list[ImportRowError], int]:
    total = db.scalar(
        select(func.count()).select_from(ImportRowError).where(ImportRowError.batch_id == batch.id)
    ) or 0
    errors = db.scalars(
        select(ImportRowError).where(ImportRowError.batch_id == batch.id)
        .order_by(ImportRowError.record, ImportRowError.id).offset(page.offset).limit(page.page_size)
    ).all()
    return list(errors), total
