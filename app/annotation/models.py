from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow

ASSIGNMENT_STATUSES = ("active", "submitted", "skipped", "released")
ANNOTATION_STATUSES = ("draft", "submitted", "accepted", "rejected", "returned")


class Assignment(Base):
    """An item leased to one annotator until expires_at."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("item_id", "user_id"),
        Index("ix_assignments_item_status_expires", "item_id", "status", "expires_at"),
        Index("ix_assignments_user_status", "user_id", "status"),
        CheckConstraint("status IN ('active', 'submitted', 'skipped', 'released')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="active")
    leased_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Annotation(Base):
    __tablename__ = "annotations"
    __table_args__ = (
        UniqueConstraint("item_id", "user_id"),
        Index("ix_annotations_project_status", "project_id", "status", "submitted_at"),
        CheckConstraint(
            "status IN ('draft', 'submitted', 'accepted', 'rejected', 'returned')", name="status"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The final assistant turn, written from scratch or edited from base_candidate_id.
    response: Mapped[str | None] = mapped_column(Text)
    base_candidate_id: Mapped[int | None] = mapped_column(ForeignKey("candidates.id", ondelete="SET NULL"))
    ratings: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    # Candidate ids to rank (1 is best, ties share a rank): {"<candidate id>": rank}.
    ranking: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    # Pairwise choice: {"preferred": candidate id, "other": candidate id}.
    choice: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    note: Mapped[str] = mapped_column(Text, default="")
    time_spent_ms: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    # Idempotency key of the last submit form, so a repeated post stores one annotation.
    submit_token: Mapped[str | None] = mapped_column(String(64))
    submitted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AnnotationHistory(Base):
    """One saved version of an annotation, with who saved it and when."""

    __tablename__ = "annotation_history"
    __table_args__ = (UniqueConstraint("annotation_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    annotation_id: Mapped[int] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
