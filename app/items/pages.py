"""Item list, item detail and the import upload form."""

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from app.deps import DB, AppSettings, PageUser, TransactionRoute
from app.items import service
from app.items.importing import ImportOptions
from app.pagination import Page, Pagination
from app.projects.service import get_project_for
from app.web.labels import label_context
from app.web.templating import render

router = APIRouter(include_in_schema=False, route_class=TransactionRoute)


@router.get("/projects/{project}/items")
def item_list(
    request: Request, project: str, db: DB, user: PageUser, page: Pagination,
    status: str | None = None, q: str | None = None,
) -> Response:
    target = get_project_for(db, user, project)
    items, total = service.list_items(db, target, page, status=status or None, search=q or None)
    filters = {key: value for key, value in (("status", status), ("q", q)) if value}
    context = {
        "project": target, "items": items, "page": Page.build(items, total, page), "status": status, "q": q,
        "base_query": urlencode(filters) + "&" if filters else "",
        **label_context(request.state.locale),
    }
    template = "partials/items_table.html" if request.headers.get("HX-Request") else "items/list.html"
    return render(request, template, context)


@router.get("/projects/{project}/items/{item_id}")
def item_detail(request: Request, project: str, item_id: int, db: DB, user: PageUser) -> Response:
    target = get_project_for(db, user, project)
    item = service.get_item(db, target, item_id)
    return render(request, "items/detail.html", {
        "project": target, "item": item, "candidates": service.list_candidates(db, item),
        **label_context(request.state.locale),
    })


@router.post("/projects/{project}/import")
async def import_upload(
    request: Request, project: str, db: DB, user: PageUser, settings: AppSettings,
    file: Annotated[UploadFile, File()], encoding: Annotated[str, Form()] = "",
) -> Response:
    target = get_project_for(db, user, project, need="manager")
    user_id = user.id
    db.expunge(target)
    db.rollback()

    options = ImportOptions(
        encoding=encoding.strip() or None, max_text_chars=settings.max_text_chars, filename=file.filename,
    )
    summary = await run_in_threadpool(
        service.import_file, target, file.file, options, user_id=user_id, batch_rows=settings.import_batch_rows,
    )
    return render(request, "items/import_result.html", {
        "project": target, "summary": summary,
        "errors_url": f"/api/v1/projects/{target.slug}/imports/{summary.batch_id}/errors",
    })
