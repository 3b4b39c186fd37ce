from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow

# new: needs annotations; annotated: has the annotations it needs and waits for review;
# accepted / rejected: reviewed.
ITEM_STATUSES = ("new", "annotated", "accepted", "rejected")
CANDIDATE_SOURCES = ("import", "human", "model")
CANDIDATE_LABELS = ("reference", "chosen", "rejected")


class ImportBatch(Base):
    __tablename__ = "import_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str | None] = mapped_column(String(500))
    shape: Mapped[str | None] = mapped_column(String(32))
    rows_created: Mapped[int] = mapped_column(Integer, default=0)
    rows_duplicate: Mapped[int] = mapped_column(Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ImportRowError(Base):
    __tablename__ = "import_row_errors"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batches.id", ondelete="CASCADE"), index=True)
    record: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        # One item per content and per external id in a project: re-imports and exact duplicates
        # (after normalization) are found through these, and the constraints stop concurrent imports
        # from storing the same row twice.
        UniqueConstraint("project_id", "content_hash"),
        UniqueConstraint("project_id", "external_id"),
        Index("ix_items_project_status_priority", "project_id", "status", "priority", "id"),
        CheckConstraint("status IN ('new', 'annotated', 'accepted', 'rejected')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    external_id: Mapped[str | None] = mapped_column(String(500))
    content_hash: Mapped[str] = mapped_column(String(64))
    # Normalized prompt only; train/validation splits group items by it.
    prompt_hash: Mapped[str] = mapped_column(String(64))
    # [{"role": ..., "content": ...}, ...]: the conversation up to the turn that needs a response.
    messages: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    # The first user turn, kept as a column for listing and text search.
    prompt_text: Mapped[str] = mapped_column(Text)
    tools: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="new")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    annotation_count: Mapped[int] = mapped_column(Integer, default=0)
    import_batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batches.id", ondelete="SET NULL"))
    record_number: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Candidate(Base):
    """A response to an item: imported, written by a person, or drafted by a model."""

    __tablename__ = "candidates"
    __table_args__ = (
        CheckConstraint("source IN ('import', 'human', 'model')", name="source"),
        CheckConstraint("label IS NULL OR label IN ('reference', 'chosen', 'rejected')", name="label"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(16))
    # 1 is best; equal ranks are ties.
    rank: Mapped[int | None] = mapped_column(Integer)
    model_name: Mapped[str | None] = mapped_column(String(500))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
