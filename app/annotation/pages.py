"""Annotation workspace pages: start, lease the next item, annotate, skip, and one's own submissions."""

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from app.annotation import queue, service
from app.annotation.forms import PostedForm, parse_form, values_from_input
from app.annotation.labels import annotation_label_context
from app.annotation.questions import load_settings
from app.annotation.workspace import diff_context, progress_context, workspace_context
from app.db import skip_commit_flush, utcnow
from app.deps import DB, PageUser, TransactionRoute
from app.errors import Conflict, InvalidInput
from app.items.service import get_item
from app.pagination import Page, Pagination
from app.projects.service import get_project_for, member_role
from app.web.labels import label_context
from app.web.templating import render

router = APIRouter(include_in_schema=False, route_class=TransactionRoute)


def _item_url(slug: str, item_id: int) -> str:
    return f"/projects/{slug}/annotate/items/{item_id}"


def _redirect_to_next(db, project, user) -> RedirectResponse:
    result = queue.next_item(db, project, user, utcnow())
    if result.item is None:
        return RedirectResponse(f"/projects/{project.slug}/annotate", status_code=303)
    return RedirectResponse(_item_url(project.slug, result.item.id), status_code=303)


@router.get("/projects/{project}/annotate")
def start(request: Request, project: str, db: DB, user: PageUser) -> Response:
    """Redirect to the item the user holds, offer to start, or explain why nothing is left."""
    target = get_project_for(db, user, project)
    now = utcnow()
    held = queue.current_lease(db, target, user, now)
    if held is not None:
        return RedirectResponse(_item_url(target.slug, held.item_id), status_code=303)

    reason = None if queue.has_open_item(db, target, user, now) else queue.empty_queue_reason(db, target, user, now)
    return render(request, "annotation/start.html", {
        "project": target, "reason": reason, "reason_message": queue.EMPTY_QUEUE_MESSAGES.get(reason),
        "role": member_role(db, user, target), **progress_context(db, target, user),
    })


@router.post("/projects/{project}/annotate/next")
def take_next(request: Request, project: str, db: DB, user: PageUser) -> Response:
    target = get_project_for(db, user, project)
    # A lease lost in a database crash costs nothing, because the annotator can take the item again.
    skip_commit_flush(db)
    return _redirect_to_next(db, target, user)


@router.get("/projects/{project}/annotate/items/{item_id}")
def workspace(
    request: Request, project: str, item_id: int, db: DB, user: PageUser, saved: int | None = None,
) -> Response:
    target = get_project_for(db, user, project)
    item = get_item(db, target, item_id)
    service.ensure_visible(db, item, user)
    context = workspace_context(db, target, item, user, request.state.locale, utcnow())
    return render(request, "annotation/workspace.html", {
        **context, "saved": bool(saved), "role": member_role(db, user, target),
    })


def _conflict_page(request: Request, project, item, error: Conflict, response_text: str | None) -> Response:
    template = "partials/annotate_conflict.html" if request.headers.get("HX-Request") else "annotation/conflict.html"
    response = render(request, template, {
        "project": project, "item": item, "message": error.message, "unsaved_response": response_text,
        "reload_url": _item_url(project.slug, item.id),
    }, status_code=409)
    if request.headers.get("HX-Request"):
        response.headers["HX-Retarget"] = "#messages"
        response.headers["HX-Reswap"] = "innerHTML"
    return response


@router.post("/projects/{project}/annotate/items/{item_id}/draft")
def save_draft(request: Request, form: PostedForm, project: str, item_id: int, db: DB, user: PageUser) -> Response:
    """Autosave target of the workspace form; returns the save status and the updated diff."""
    target = get_project_for(db, user, project)
    item = get_item(db, target, item_id)
    settings = load_settings(target)
    task = service.task_for(db, settings, item, user.id)
    data = parse_form(form, settings, task)
    try:
        annotation = service.save_draft(db, target, item.id, user, data, utcnow())
    except Conflict as error:
        db.rollback()
        return _conflict_page(request, target, item, error, data.response)
    values = values_from_input(data)
    return render(request, "partials/annotate_draft_saved.html", {
        "annotation": annotation, "task": task, **diff_context(task, values),
    })


@router.post("/projects/{project}/annotate/items/{item_id}/submit")
def submit(request: Request, form: PostedForm, project: str, item_id: int, db: DB, user: PageUser) -> Response:
    target = get_project_for(db, user, project)
    item = get_item(db, target, item_id)
    settings = load_settings(target)
    task = service.task_for(db, settings, item, user.id)
    data = parse_form(form, settings, task)
    now = utcnow()
    try:
        service.submit(db, target, item.id, user, data, now)
    except Conflict as error:
        db.rollback()
        return _conflict_page(request, target, item, error, data.response)
    except InvalidInput as error:
        db.rollback()
        context = workspace_context(
            db, target, item, user, request.state.locale, now, values=values_from_input(data),
            errors=error.details.get("problems") or [error.message],
        )
        return render(request, "annotation/workspace.html", {
            **context, "role": member_role(db, user, target),
        }, status_code=422)

    if form.get("then") == "stay":
        return RedirectResponse(_item_url(target.slug, item.id) + "?saved=1", status_code=303)
    return _redirect_to_next(db, target, user)


@router.post("/projects/{project}/annotate/items/{item_id}/skip")
def skip(request: Request, project: str, item_id: int, db: DB, user: PageUser) -> Response:
    target = get_project_for(db, user, project)
    queue.skip_item(db, target, user, get_item(db, target, item_id))
    return _redirect_to_next(db, target, user)


@router.get("/projects/{project}/annotate/mine")
def my_annotations(request: Request, project: str, db: DB, user: PageUser, page: Pagination) -> Response:
    target = get_project_for(db, user, project)
    rows, total = service.list_own(db, target, user, page)
    return render(request, "annotation/mine.html", {
        "project": target, "rows": rows, "page": Page.build(rows, total, page), "base_query": "",
        "role": member_role(db, user, target), **label_context(request.state.locale),
        **annotation_label_context(request.state.locale),
    })
