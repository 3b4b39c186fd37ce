"""Import every ORM model so that Base.metadata is complete (Alembic and tests use this)."""

from app.annotation.models import Annotation, AnnotationHistory, Assignment
from app.auth.models import ApiToken, User, WebSession
from app.db import Base
from app.items.models import Candidate, ImportBatch, ImportRowError, Item
from app.jobs.models import Job
from app.projects.models import Project, ProjectMember
from app.review.models import Review
from app.runs.models import Run
from app.snapshots.models import Snapshot

__all__ = [
    "Annotation", "AnnotationHistory", "ApiToken", "Assignment", "Base", "Candidate", "ImportBatch",
    "ImportRowError", "Item", "Job", "Project", "ProjectMember", "Review", "Run", "Snapshot", "User",
    "WebSession",
]
