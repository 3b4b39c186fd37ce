from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class Snapshot(Base):
    """An immutable, numbered export of a project's items, written once as files."""

    __tablename__ = "snapshots"
    __table_args__ = (
        UniqueConstraint("project_id", "number"),
        CheckConstraint("status IN ('ready', 'failed')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="ready")
    # Which items went in: {"statuses": [...], "include_unreviewed": bool}.
    filters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    formats: Mapped[list[str]] = mapped_column(JSON, default=list)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    validation_fraction: Mapped[float] = mapped_column(Float, default=0.1)
    # {"train": n, "validation": n, "items": n, "skipped": {...}}
    row_counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # {"train.messages.jsonl": {"rows": n, "bytes": n, "sha256": "..."}, ...}
    files: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    card: Mapped[str] = mapped_column(Text, default="")
    note: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
