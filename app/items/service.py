"""Items: import from files and bodies, listing, search and detail."""

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from sqlalchemy import func, insert, or_, select
from sqlalchemy.orm import Session

from app.db import unit_of_work
from app.errors import InvalidInput, NotFound, PayloadTooLarge
from app.items.importing import ImportFormatError, ImportOptions, read_records
from app.items.models import ITEM_STATUSES, Candidate, ImportBatch, ImportRowError, Item
from app.items.records import ImportRecord, RowError, content_hash, prompt_hash
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

        keyed: list[tuple[ImportRecord, str, str]] = []
        for record in self.records:
            digest = content_hash(record.messages, record.response, record.chosen, record.rejected)
            keyed.append((record, _dedup_key(record, digest), digest))
        existing_keys = set(db.scalars(
            select(Item.dedup_key).where(
                Item.project_id == self.project_id, Item.dedup_key.in_({key for _, key, _ in keyed})
            )
        ))
        existing_hashes = set(db.scalars(
            select(Item.content_hash).where(
                Item.project_id == self.project_id, Item.content_hash.in_({digest for _, _, digest in keyed})
            )
        ))

        item_rows: list[dict[str, Any]] = []
        candidates_per_item: list[list[dict[str, Any]]] = []
        for record, key, digest in keyed:
            if key in existing_keys or digest in existing_hashes:
                self.summary.duplicates += 1
                continue
            existing_keys.add(key)
            existing_hashes.add(digest)
            messages = [{"role": m.role, "content": m.content} for m in record.messages]
            item_rows.append({
                "project_id": self.project_id, "external_id": record.external_id, "dedup_key": key,
                "content_hash": digest, "prompt_hash": prompt_hash(record.messages), "messages": messages,
                "prompt_text": _first_user_text(messages), "tools": record.tools, "meta": record.metadata,
                "status": "new", "import_batch_id": self.summary.batch_id, "record_number": record.record,
            })
            candidates_per_item.append(_candidate_rows(record))
        if not item_rows:
            return

        item_ids = db.scalars(
            insert(Item).returning(Item.id, sort_by_parameter_order=True), item_rows
        ).all()
        candidate_rows = [
            {**candidate, "item_id": item_id}
            for item_id, candidates in zip(item_ids, candidates_per_item, strict=True)
            for candidate in candidates
        ]
        if candidate_rows:
            db.execute(insert(Candidate), candidate_rows)
        self.summary.created += len(item_rows)


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
