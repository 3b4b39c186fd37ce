"""Template context of the annotation workspace page and its fragments."""

import json
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.annotation import queue, service
from app.annotation.diff import render_diff
from app.annotation.forms import initial_values, values_from_annotation
from app.annotation.labels import annotation_label_context
from app.annotation.questions import (
    AnnotationSettings,
    criterion_label,
    flag_label,
    load_settings,
)
from app.annotation.task import ItemTask
from app.auth.models import User
from app.i18n.catalog import translate
from app.items.models import Item
from app.projects.models import Project
from app.web.labels import label_context


def diff_context(task: ItemTask, values: dict[str, Any]) -> dict[str, Any]:
    base = task.candidate(values.get("base_candidate_id"))
    if base is None:
        return {"diff_base": None, "diff_html": "", "diff_stats": None}
    html, stats = render_diff(base.text, values.get("response") or "")
    return {"diff_base": base, "diff_html": html, "diff_stats": stats}


def question_labels(settings: AnnotationSettings, locale: str) -> dict[str, Any]:
    def translate_message(message: str) -> str:
        return translate(locale, message)

    return {
        "criteria": [
            {"key": c.key, "label": criterion_label(c, translate_message), "description": c.description}
            for c in settings.rubric.criteria
        ] if settings.rubric.enabled else [],
        "flags": [{"key": f.key, "label": flag_label(f, translate_message)} for f in settings.flags],
    }


def progress_context(db: Session, project: Project, user: User) -> dict[str, Any]:
    return {"progress": queue.progress(db, project, user)}


def workspace_context(
    db: Session, project: Project, item: Item, user: User, locale: str, now: datetime,
    *, values: dict[str, Any] | None = None, errors: list[str] | None = None,
) -> dict[str, Any]:
    settings = load_settings(project)
    task = service.task_for(db, settings, item, user.id)
    assignment, annotation = service.own_work(db, item.id, user.id)
    if values is None:
        values = values_from_annotation(annotation) if annotation is not None else initial_values(task)

    status = annotation.status if annotation is not None else "draft"
    return {
        "project": project, "item": item, "settings": settings, "task": task, "annotation": annotation,
        "status": status, "editable": status in ("draft", "submitted"), "reopened": status == "submitted",
        "lease_expired": status == "draft" and not queue.lease_is_live(assignment, now),
        "lease": assignment, "values": values, "errors": errors or [],
        # A new token per render: a repeated post of this form is recognised and stored once.
        "submit_token": secrets.token_urlsafe(16),
        "shortcuts_json": json.dumps(settings.shortcuts.model_dump()),
        "guidelines": project.guidelines,
        **question_labels(settings, locale), **diff_context(task, values), **progress_context(db, project, user),
        **label_context(locale), **annotation_label_context(locale),
    }
