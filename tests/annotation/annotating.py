"""Helpers for the annotation and review tests: items, members, the queue, stored rows."""

import secrets
from datetime import timedelta

from sqlalchemy import select, update
from support import Api, import_jsonl

COMPLETE_RATINGS = {"helpfulness": 4, "correctness": 5, "harmlessness": 5}


def add_member(admin_api: Api, project: str, username: str, role: str = "annotator") -> None:
    response = admin_api.put(f"/api/v1/projects/{project}/members/{username}", json={"role": role})
    assert response.status_code == 200, response.text


def members(user_factory, admin_api: Api, project: str, *names: str, role: str = "annotator") -> list[Api]:
    apis = []
    for name in names:
        api = user_factory(name)
        add_member(admin_api, project, name, role)
        apis.append(api)
    return apis


def import_prompts(admin_api: Api, project: str, count: int, *, with_answer: bool = True) -> list[int]:
    """Import `count` Alpaca rows; return the new item ids in order."""
    rows = [
        {"instruction": f"Prompt number {i}", "input": "", "output": f"Answer number {i}" if with_answer else ""}
        for i in range(count)
    ]
    response = import_jsonl(admin_api, project, rows)
    assert response.status_code == 201, response.text
    assert response.json()["created"] == count
    return item_ids(project)


def item_ids(project: str) -> list[int]:
    from app.db import unit_of_work
    from app.items.models import Item
    from app.projects.models import Project

    with unit_of_work(write=False) as db:
        project_id = db.scalar(select(Project.id).where(Project.slug == project))
        return list(db.scalars(select(Item.id).where(Item.project_id == project_id).order_by(Item.id)))


def set_project(admin_api: Api, project: str, **fields) -> None:
    response = admin_api.patch(f"/api/v1/projects/{project}", json=fields)
    assert response.status_code == 200, response.text


def take_next(api: Api, project: str) -> dict:
    response = api.post(f"/api/v1/projects/{project}/queue/next")
    assert response.status_code == 200, response.text
    return response.json()


def submit(api: Api, project: str, item_id: int, *, version: int = 0, token: str | None = None, **fields):
    body = {"response": "A careful answer.", "ratings": COMPLETE_RATINGS, "version": version,
            "submit_token": token or secrets.token_hex(8), **fields}
    return api.post(f"/api/v1/projects/{project}/items/{item_id}/annotation", json=body)


def work_through(api: Api, project: str) -> dict:
    """Take one item and submit it; return the next response (item may be null)."""
    offered = take_next(api, project)
    if offered["item"] is not None:
        response = submit(api, project, offered["item"]["id"])
        assert response.status_code == 200, response.text
    return offered


def expire_leases() -> None:
    from app.annotation.models import Assignment
    from app.db import unit_of_work, utcnow

    with unit_of_work() as db:
        db.execute(
            update(Assignment).where(Assignment.status == "active")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )


def annotations_by_item(project: str) -> dict[int, list[tuple[int, str]]]:
    """{item id: [(user id, status), ...]} for annotations that are not drafts."""
    from app.annotation.models import Annotation
    from app.db import unit_of_work

    grouped: dict[int, list[tuple[int, str]]] = {}
    with unit_of_work(write=False) as db:
        for item_id, user_id, status in db.execute(
            select(Annotation.item_id, Annotation.user_id, Annotation.status).where(Annotation.status != "draft")
        ):
            grouped.setdefault(item_id, []).append((user_id, status))
    return grouped


def item_row(item_id: int):
    from app.db import unit_of_work
    from app.items.models import Item

    with unit_of_work(write=False) as db:
        item = db.get(Item, item_id)
        db.expunge(item)
        return item


def add_candidate(item_id: int, text: str, source: str = "model", label: str | None = None) -> int:
    from app.db import unit_of_work
    from app.items.models import Candidate

    with unit_of_work() as db:
        candidate = Candidate(item_id=item_id, text=text, source=source, label=label)
        db.add(candidate)
        db.flush()
        return candidate.id


def set_priority(item_id: int, priority: int) -> None:
    from app.db import unit_of_work
    from app.items.models import Item

    with unit_of_work() as db:
        db.execute(update(Item).where(Item.id == item_id).values(priority=priority))
