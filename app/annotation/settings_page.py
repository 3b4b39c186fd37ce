"""The project settings page: guidelines, overlap, review, questions, lease and shortcuts."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from app.annotation.forms import PostedForm
from app.annotation.questions import (
    SHORTCUT_ACTIONS,
    SHORTCUT_LABELS,
    AnnotationSettings,
    load_settings,
    parse_settings,
)
from app.deps import DB, PageUser, TransactionRoute
from app.errors import InvalidInput
from app.projects import service as projects
from app.projects.models import Project
from app.web.labels import translated
from app.web.templating import render

router = APIRouter(include_in_schema=False, route_class=TransactionRoute)

TOGGLES = (
    ("response", "enabled"), ("response", "required"), ("response", "prefill"),
    ("rubric", "enabled"), ("rubric", "required"), ("ranking", "enabled"), ("ranking", "required"),
    ("pairwise", "enabled"), ("pairwise", "required"), ("note", "enabled"),
)


def _lines(text: str) -> list[list[str]]:
    """Split "key | label | description" lines into their stripped parts, skipping blank lines."""
    return [[part.strip() for part in line.split("|")] for line in text.splitlines() if line.strip()]


def _int(form: FormData, name: str, label: str) -> int | None:
    raw = str(form.get(name) or "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError as error:
        raise InvalidInput(f"invalid {label} {raw!r}: expected a whole number") from error


def settings_from_form(form: FormData) -> dict[str, Any]:
    raw: dict[str, Any] = {section: {} for section in ("response", "rubric", "ranking", "pairwise", "note")}
    for section, field in TOGGLES:
        raw[section][field] = form.get(f"{section}_{field}") == "on"
    raw["rubric"]["scale_min"] = _int(form, "scale_min", "lowest score")
    raw["rubric"]["scale_max"] = _int(form, "scale_max", "highest score")
    raw["rubric"]["criteria"] = [
        {"key": parts[0], "label": parts[1] if len(parts) > 1 and parts[1] else None,
         "description": parts[2] if len(parts) > 2 else ""}
        for parts in _lines(str(form.get("criteria") or ""))
    ]
    raw["flags"] = [
        {"key": parts[0], "label": parts[1] if len(parts) > 1 and parts[1] else None}
        for parts in _lines(str(form.get("flags") or ""))
    ]
    lease_minutes = _int(form, "lease_minutes", "lease")
    raw["lease_s"] = lease_minutes * 60 if lease_minutes is not None else None
    raw["shortcuts"] = {action: str(form.get(f"key_{action}") or "").strip() for action in SHORTCUT_ACTIONS}
    return raw


def _stored_values(project: Project, settings: AnnotationSettings) -> dict[str, Any]:
    return {
        "guidelines": project.guidelines, "annotations_per_item": project.annotations_per_item,
        "review_required": project.review_required, "self_review": project.self_review,
        "toggles": {f"{section}_{field}": getattr(getattr(settings, section), field) for section, field in TOGGLES},
        "scale_min": settings.rubric.scale_min, "scale_max": settings.rubric.scale_max,
        "criteria": "\n".join(
            " | ".join([c.key, c.label or "", c.description]).rstrip(" |") for c in settings.rubric.criteria
        ),
        "flags": "\n".join(" | ".join([f.key, f.label or ""]).rstrip(" |") for f in settings.flags),
        "lease_minutes": settings.lease_s // 60 if settings.lease_s else "",
        "keys": settings.shortcuts.model_dump(),
    }


def _posted_values(form: FormData) -> dict[str, Any]:
    """Return the submitted form as the template shows it, so a rejected save keeps the manager's edits."""
    text = {name: str(form.get(name) or "") for name in (
        "guidelines", "annotations_per_item", "scale_min", "scale_max", "criteria", "flags", "lease_minutes",
    )}
    return {
        **text, "review_required": form.get("review_required") == "on", "self_review": form.get("self_review") == "on",
        "toggles": {f"{section}_{field}": form.get(f"{section}_{field}") == "on" for section, field in TOGGLES},
        "keys": {action: str(form.get(f"key_{action}") or "") for action in SHORTCUT_ACTIONS},
    }


@router.get("/projects/{project}/settings")
def settings_page(request: Request, project: str, db: DB, user: PageUser, saved: int | None = None) -> Response:
    target = projects.get_project_for(db, user, project, need="manager")
    return render(request, "annotation/settings.html", {
        "project": target, "role": "manager", "values": _stored_values(target, load_settings(target)),
        "actions": SHORTCUT_ACTIONS, "shortcut_labels": translated(SHORTCUT_LABELS, request.state.locale),
        "saved": bool(saved),
    })


@router.post("/projects/{project}/settings")
def save_settings(request: Request, form: PostedForm, project: str, db: DB, user: PageUser) -> Response:
    target = projects.get_project_for(db, user, project, need="manager")
    try:
        parsed = parse_settings(settings_from_form(form))
        overlap = _int(form, "annotations_per_item", "annotations per item") or target.annotations_per_item
        review_required = form.get("review_required") == "on"
        projects.update_project(
            db, target, guidelines=str(form.get("guidelines") or ""), annotations_per_item=overlap,
            review_required=review_required, self_review=form.get("self_review") == "on",
            settings=parsed.model_dump(mode="json", exclude_defaults=True),
        )
    except InvalidInput as error:
        db.rollback()
        return render(request, "annotation/settings.html", {
            "project": target, "role": "manager", "values": _posted_values(form),
            "actions": SHORTCUT_ACTIONS, "shortcut_labels": translated(SHORTCUT_LABELS, request.state.locale),
            "error": error.message,
        }, status_code=422)
    return RedirectResponse(f"/projects/{target.slug}/settings?saved=1", status_code=303)
