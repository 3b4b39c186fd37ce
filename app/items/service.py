"""Items: import from files and bodies, listing, search and detail."""

import queue
import tempfile
import threading
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


@dataclass
class _Batch:
    records: list[tuple[ImportRecord, str, str]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records) + len(self.errors)


class _BatchWriter:
    """Writes parsed rows in batches, one short transaction each, on a background thread.

    Each batch commits on its own so a large import never holds the write lock for long, and a
    re-import after a failure skips the rows already stored. The caller's thread parses and
    hashes the next batch while this thread writes, because the database drivers release the GIL
    while the database works.
    """

    QUEUED_BATCHES = 2

    def __init__(self, project_id: int, summary: ImportSummary, batch_rows: int) -> None:
        self.project_id = project_id
        self.summary = summary
        self.batch_rows = batch_rows
        self.pending = _Batch()
        self.current_batch_rows = min(FIRST_BATCH_ROWS, batch_rows)
        self.analyzed_at_index = 0
        self.failure: BaseException | None = None
        self.queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=self.QUEUED_BATCHES)
        self.thread = threading.Thread(target=self._run, name=f"import-{summary.batch_id}", daemon=True)
        self.thread.start()

    def add(self, row: ImportRecord | RowError) -> None:
        if isinstance(row, RowError):
            self.pending.errors.append(row)
        else:
            prompt_digest, digest = record_hashes(row.messages, row.response, row.chosen, row.rejected)
            self.pending.records.append((row, digest, prompt_digest))
        if len(self.pending) >= self.current_batch_rows:
            self._submit()
            # Small first batches start the writer thread early; larger ones later cut the
            # per-transaction cost of big files.
            self.current_batch_rows = min(self.current_batch_rows * 2, self.batch_rows)

    def _submit(self) -> None:
        if self.failure is not None:
            raise self.failure
        if len(self.pending):
            self.queue.put(self.pending)
            self.pending = _Batch()

    def finish(self) -> None:
        """Write what is left, wait for the writer thread, and re-raise its error if it failed."""
        try:
            self._submit()
        finally:
            self.queue.put(None)
            self.thread.join()
        if self.failure is not None:
            raise self.failure

    def abandon(self) -> None:
        """Stop the writer thread after what is already queued, dropping the pending batch."""
        self.pending = _Batch()
        self.queue.put(None)
        self.thread.join()

    def _run(self) -> None:
        while (batch := self.queue.get()) is not None:
            if self.failure is not None:
                continue
            try:
                self._write(batch)
            except BaseException as error:  # noqa: BLE001 - handed to the caller's thread by finish()
                self.failure = error

    def _write(self, batch: _Batch) -> None:
        with unit_of_work() as db:
            self._write_errors(db, batch.errors)
            self._write_records(db, batch.records)
            self._refresh_statistics(db)
            stored = db.get(ImportBatch, self.summary.batch_id)
            stored.rows_created = self.summary.created
            stored.rows_duplicate = self.summary.duplicates
            stored.rows_rejected = self.summary.rejected
            stored.shape = self.summary.shape

    def _refresh_statistics(self, db: Session) -> None:
        """Run ANALYZE on PostgreSQL as an import grows the items table past a few sizes.

        Without statistics on a freshly filled table the planner serves the duplicate lookup
        with the (project_id, external_id) index and rechecks every row of the project against
        the whole IN list, so each batch gets slower than the last. Autovacuum analyzes too
        late for one large import.
        """
        if db.get_bind().dialect.name != "postgresql":
            return
        while self.analyzed_at_index < len(ANALYZE_AFTER_ROWS) and self.summary.created >= ANALYZE_AFTER_ROWS[self.analyzed_at_index]:
            db.execute(text("ANALYZE items"))
            self.analyzed_at_index += 1

    def _write_errors(self, db: Session, errors: list[RowError]) -> None:
        if not errors:
            return
        db.execute(
            insert(ImportRowError),
            [{"batch_id": self.summary.batch_id, "record": e.record, "reason": e.reason} for e in errors],
        )
        for error in errors:
            self.summary.rejected += 1
            if len(self.summary.errors) < INLINE_ERROR_LIMIT:
                self.summary.errors.append({"record": error.record, "reason": error.reason})

    def _write_records(self, db: Session, hashed: list[tuple[ImportRecord, str, str]]) -> None:
        if not hashed:
            return

        existing_hashes = _existing_values(db, self.project_id, "content_hash", {d for _, d, _ in hashed})
        external_ids = {record.external_id for record, _, _ in hashed if record.external_id}
        existing_external_ids = _existing_values(db, self.project_id, "external_id", external_ids)

        # A row is a duplicate when its external id or its normalized content is already stored,
        # in the database or earlier in this batch.
        fresh: list[tuple[ImportRecord, str, str]] = []
        for entry in hashed:
            record, digest, _ = entry
            if digest in existing_hashes or (record.external_id and record.external_id in existing_external_ids):
                self.summary.duplicates += 1
                continue
            existing_hashes.add(digest)
            if record.external_id:
                existing_external_ids.add(record.external_id)
            fresh.append(entry)
        if not fresh:
            return

        _insert_items(db, self.project_id, self.summary.batch_id, fresh)
        self.summary.created += len(fresh)


_ITEM_COLUMNS = (
    "id", "project_id", "external_id", "content_hash", "prompt_hash", "messages", "prompt_text",
    "tools", "metadata", "status", "priority", "annotation_count", "import_batch_id", "record_number",
    "created_at", "updated_at",
)
_CANDIDATE_COLUMNS = ("item_id", "text", "source", "label", "rank", "created_at")


# Rows in the first batch of an import; each later batch doubles up to the configured size.
FIRST_BATCH_ROWS = 1_000
# Rows created by one import after which PostgreSQL statistics are refreshed (see _refresh_statistics).
ANALYZE_AFTER_ROWS = (1_000, 20_000, 200_000)
# Values per lookup query; SQLite allows 32,766 bound parameters per statement.
LOOKUP_CHUNK = 5_000


def _existing_values(db: Session, project_id: int, column: str, values: set[str]) -> set[str]:
    """Return which of `values` the project's items already have in `column`.

    Runs on the driver's cursor: SQLAlchemy compiles an IN list parameter by parameter, which at
    thousands of values costs more than the lookup itself.
    """
    if not values:
        return set()
    marker = "?" if db.get_bind().dialect.name == "sqlite" else "%s"
    found: set[str] = set()
    ordered = list(values)
    cursor = db.connection().connection.cursor()
    try:
        for start in range(0, len(ordered), LOOKUP_CHUNK):
            chunk = ordered[start:start + LOOKUP_CHUNK]
            cursor.execute(
                f"SELECT {column} FROM items WHERE project_id = {marker} AND {column} IN ({', '.join([marker] * len(chunk))})",
                [project_id, *chunk],
            )
            found.update(row[0] for row in cursor.fetchall())
    finally:
        cursor.close()
    return found


def _insert_sql(db: Session, table: str, columns: tuple[str, ...]) -> str:
    marker = "?" if db.get_bind().dialect.name == "sqlite" else "%s"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([marker] * len(columns))})"


def _insert_items(db: Session, project_id: int, batch_id: int, fresh: list[tuple[ImportRecord, str, str]]) -> None:
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
    for item_id, (record, digest, prompt_digest) in zip(item_ids, fresh, strict=True):
        messages = [{"role": m.role, "content": m.content} for m in record.messages]
        item_rows.append((
            item_id, project_id, record.external_id, digest, prompt_digest,
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

    Commits one transaction per batch of rows (see _BatchWriter) and does not use the caller's session.
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
        writer.finish()
        log.info("import stopped", project_id=project.id, import_id=batch_id, created=summary.created)
        stored = (
            f" {summary.created} rows before that point were stored (import {batch_id}); importing the"
            " fixed file again skips them." if summary.created else ""
        )
        raise InvalidInput(str(error).rstrip(".") + "." + stored, import_id=batch_id, created=summary.created) from error
    except BaseException:
        writer.abandon()
        raise
    writer.finish()

    log.info(
        "import finished", project_id=project.id, import_id=batch_id, created=summary.created,
        duplicates=summary.duplicates, rejected=summary.rejected,
    )
    return summary


def import_file(
    project: Project, stream: BinaryIO, options: ImportOptions, *, user_id: int | None, batch_rows: int,
) -> ImportSummary:
    """Parse a file and store its rows. A problem with the whole file raises InvalidInput."""
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
