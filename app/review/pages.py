"""Review page: submitted annotations oldest first, accepted or rejected one by one."""

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from app.annotation.diff import render_diff
from app.annotation.labels import annotation_label_context
from app.annotation.questions import load_settings
from app.annotation.workspace import question_labels
from app.db import utcnow
from app.deps import DB, PageUser, TransactionRoute
from app.pagination import Page, Pagination
from app.projects.service import get_project_for, member_role
from app.review import service
from app.web.labels import label_context
from app.web.templating import render

router = APIRouter(include_in_schema=False, route_class=TransactionRoute)


def _card(row: service.PendingRow, candidates: list) -> dict[str, Any]:
    by_id = {str(c.id): c for c in candidates}
    annotation = row.annotation
    base = by_id.get(str(annotation.base_candidate_id)) if annotation.base_candidate_id else None
    diff = render_diff(base.text, annotation.response or "") if base is not None else None
    ranking = sorted(
        ((rank, by_id.get(candidate_id), candidate_id) for candidate_id, rank in (annotation.ranking or {}).items()),
        key=lambda entry: (entry[0], entry[2]),
    )
    choice = annotation.choice or {}
    return {
        "annotation": annotation, "item": row.item, "annotator": row.annotator, "diff": diff,
        "ranking": ranking, "preferred": by_id.get(str(choice.get("preferred"))) if choice else None,
    }


@router.get("/projects/{project}/review")
def review_list(request: Request, project: str, db: DB, user: PageUser, page: Pagination) -> Response:
    target = get_project_for(db, user, project, need="reviewer")
    rows, total = service.list_pending(db, target, user, page)
    candidates = service.candidates_by_item(db, [row.item.id for row in rows])
    locale = request.state.locale
    return render(request, "review/list.html", {
        "project": target, "cards": [_card(row, candidates[row.item.id]) for row in rows],
        "page": Page.build(rows, total, page), "base_query": "", "role": member_role(db, user, target),
        "own_pending": service.own_pending_count(db, target, user),
        **question_labels(load_settings(target), locale), **label_context(locale),
        **annotation_label_context(locale),
    })


@router.post("/projects/{project}/review/{annotation_id}")
def review_decide(
    request: Request, project: str, annotation_id: int, db: DB, user: PageUser,
    decision: Annotated[str, Form()], comment: Annotated[str, Form()] = "",
    version: Annotated[int | None, Form()] = None, page: Annotated[int, Form()] = 1,
) -> Response:
    target = get_project_for(db, user, project, need="reviewer")
    review = service.decide(
        db, target, annotation_id, user, decision=decision, comment=comment, version=version, now=utcnow(),
    )
    if not request.headers.get("HX-Request"):
        return RedirectResponse(f"/projects/{target.slug}/review?page={max(1, page)}", status_code=303)
    annotation = service.get_annotation(db, target, annotation_id)
    return render(request, "partials/review_decided.html", {
        "project": target, "review": review, "annotation": annotation,
        **annotation_label_context(request.state.locale),
    })
