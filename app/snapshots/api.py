"""REST routes for snapshots and their files."""

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from app.deps import DB, ApiUser, AppSettings, TransactionRoute
from app.pagination import Page, Pagination
from app.projects.service import get_project_for
from app.snapshots import service

router = APIRouter(prefix="/api/v1/projects/{project}/snapshots", tags=["snapshots"], route_class=TransactionRoute)

MEDIA_TYPES = {".jsonl": "application/jsonl; charset=utf-8", ".json": "application/json; charset=utf-8",
               ".md": "text/markdown; charset=utf-8"}


class SnapshotIn(BaseModel):
    formats: list[str] = Field(default_factory=lambda: list(service.DEFAULT_FORMATS))
    include_unreviewed: bool = Field(
        False, description="also take items not yet accepted, with their imported responses"
    )
    validation_fraction: float = 0.1
    seed: int = 0
    note: str = ""


class SnapshotOut(BaseModel):
    number: int
    status: str
    formats: list[str]
    filters: dict[str, Any]
    seed: int
    validation_fraction: float
    row_counts: dict[str, Any]
    files: dict[str, Any]
    card: str
    created_at: datetime


def snapshot_out(snapshot) -> SnapshotOut:
    return SnapshotOut(
        number=snapshot.number, status=snapshot.status, formats=snapshot.formats, filters=snapshot.filters,
        seed=snapshot.seed, validation_fraction=snapshot.validation_fraction, row_counts=snapshot.row_counts,
        files=snapshot.files, card=snapshot.card, created_at=snapshot.created_at,
    )


@router.post("", status_code=201)
async def create_snapshot(project: str, body: SnapshotIn, db: DB, user: ApiUser, settings: AppSettings) -> SnapshotOut:
    target = get_project_for(db, user, project, need="manager")
    user_id = user.id
    db.expunge(target)
    db.rollback()

    options = service.SnapshotOptions(
        formats=tuple(body.formats), include_unreviewed=body.include_unreviewed,
        validation_fraction=body.validation_fraction, seed=body.seed, note=body.note,
    )
    snapshot = await run_in_threadpool(
        service.create_snapshot, target, options, user_id=user_id, snapshot_root=settings.snapshot_dir,
    )
    return snapshot_out(snapshot)


@router.get("")
def list_snapshots(project: str, db: DB, user: ApiUser, page: Pagination) -> Page[SnapshotOut]:
    target = get_project_for(db, user, project)
    snapshots, total = service.list_snapshots(db, target, page)
    return Page[SnapshotOut].build([snapshot_out(s) for s in snapshots], total, page)


@router.get("/{number}")
def get_snapshot(project: str, number: int, db: DB, user: ApiUser) -> SnapshotOut:
    target = get_project_for(db, user, project)
    return snapshot_out(service.get_snapshot(db, target, number))


@router.get("/{number}/files/{name}")
def download_file(project: str, number: int, name: str, db: DB, user: ApiUser, settings: AppSettings) -> FileResponse:
    target = get_project_for(db, user, project)
    snapshot = service.get_snapshot(db, target, number)
    path = service.snapshot_file_path(settings.snapshot_dir, target, snapshot, name)
    media_type = MEDIA_TYPES.get(path.suffix, "application/octet-stream")
    # FileResponse streams the file in chunks; nothing is loaded whole into memory.
    return FileResponse(path, media_type=media_type, filename=f"{target.slug}-{number}-{name}")
