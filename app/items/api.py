"""REST routes for items and imports."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from app.deps import DB, ApiUser, AppSettings, TransactionRoute
from app.errors import InvalidInput
from app.items import service
from app.items.importing import ImportOptions
from app.items.schemas import ImportOut, ImportRowErrorOut, ItemDetailOut, ItemOut, item_out
from app.pagination import Page, Pagination
from app.projects.service import get_project_for

router = APIRouter(prefix="/api/v1/projects/{project}", tags=["items"], route_class=TransactionRoute)

CONTENT_TYPE_FORMATS = {
    "application/json": "json",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/jsonlines": "jsonl",
    "text/csv": "csv",
}


def parse_csv_mapping(value: str | None) -> dict[str, str] | None:
    """Parse "prompt=ask,response=answer" into {"prompt": "ask", "response": "answer"}."""
    if not value:
        return None
    mapping: dict[str, str] = {}
    for pair in value.split(","):
        target, sep, column = pair.partition("=")
        if not sep or not target.strip() or not column.strip():
            raise InvalidInput(
                f"invalid csv_map entry {pair!r}: write FIELD=COLUMN pairs separated by commas, "
                "for example prompt=question,response=answer"
            )
        mapping[target.strip()] = column.strip()
    return mapping


@router.post("/items", status_code=201)
async def import_items(
    request: Request, project: str, db: DB, user: ApiUser, settings: AppSettings,
    shape: Annotated[str | None, Query(description="force a shape instead of detecting it")] = None,
    file_format: Annotated[str | None, Query(alias="format", description="json, jsonl, csv or text")] = None,
    encoding: Annotated[str | None, Query(description="text encoding when not UTF-8/UTF-16 with BOM, e.g. gbk")] = None,
    csv_map: Annotated[str | None, Query(description="CSV columns, e.g. prompt=question,response=answer")] = None,
    filename: Annotated[str | None, Query(description="name recorded with the import")] = None,
) -> dict[str, Any]:
    """Import rows from a JSON array, a JSONL body or a multipart file upload (field `file`)."""
    target = get_project_for(db, user, project, need="manager")
    user_id = user.id
    # The rows are written in their own short transactions (see service.import_records), so end
    # this request's transaction now: on SQLite it would otherwise hold the write lock they need.
    db.expunge(target)
    db.rollback()

    body = service.SpooledBody(settings.max_upload_bytes)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()

    if content_type == "multipart/form-data":
        form = await request.form(max_part_size=settings.max_upload_bytes)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidInput("multipart upload has no file: send the file in a form field named 'file'")
        filename = filename or upload.filename
        while chunk := await upload.read(service.SPOOL_CHUNK_BYTES):
            body.write(chunk)
    else:
        async for chunk in request.stream():
            body.write(chunk)
        file_format = file_format or CONTENT_TYPE_FORMATS.get(content_type)

    options = ImportOptions(
        shape=shape, file_format=file_format, encoding=encoding, csv_mapping=parse_csv_mapping(csv_map),
        max_text_chars=settings.max_text_chars, filename=filename,
    )
    try:
        summary = await run_in_threadpool(
            service.import_file, target, body.rewind(), options, user_id=user_id,
            batch_rows=settings.import_batch_rows,
        )
    finally:
        body.file.close()
    result = summary.as_dict()
    result["errors_url"] = f"/api/v1/projects/{project}/imports/{summary.batch_id}/errors"
    return result


@router.get("/items")
def list_items(
    project: str, db: DB, user: ApiUser, page: Pagination,
    status: Annotated[str | None, Query(description="new, annotated, accepted or rejected")] = None,
    q: Annotated[str | None, Query(description="text in the first user turn or the external id")] = None,
) -> Page[ItemOut]:
    target = get_project_for(db, user, project)
    items, total = service.list_items(db, target, page, status=status, search=q)
    return Page[ItemOut].build([ItemOut(**item_out(item)) for item in items], total, page)


@router.get("/items/{item_id}")
def get_item(project: str, item_id: int, db: DB, user: ApiUser) -> ItemDetailOut:
    target = get_project_for(db, user, project)
    item = service.get_item(db, target, item_id)
    return ItemDetailOut(**item_out(item, service.list_candidates(db, item)))


@router.get("/imports/{import_id}")
def get_import(project: str, import_id: int, db: DB, user: ApiUser) -> ImportOut:
    target = get_project_for(db, user, project, need="manager")
    batch = service.get_import_batch(db, target, import_id)
    return ImportOut(
        import_id=batch.id, filename=batch.filename, shape=batch.shape, created=batch.rows_created,
        duplicates=batch.rows_duplicate, rejected=batch.rows_rejected, created_at=batch.created_at,
    )


@router.get("/imports/{import_id}/errors")
def list_import_errors(project: str, import_id: int, db: DB, user: ApiUser, page: Pagination) -> Page[ImportRowErrorOut]:
    target = get_project_for(db, user, project, need="manager")
    batch = service.get_import_batch(db, target, import_id)
    errors, total = service.list_import_errors(db, batch, page)
    return Page[ImportRowErrorOut].build(
        [ImportRowErrorOut(record=e.record, reason=e.reason) for e in errors], total, page
    )
