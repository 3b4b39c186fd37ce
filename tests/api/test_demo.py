"""The demo project that `sftdesk run` creates on first start."""

from sqlalchemy import func, select


def test_demo_created_once_for_one_person(db_ready):
    from app.db import unit_of_work
    from app.demo import DEMO_SLUG, ensure_demo
    from app.items.models import Item
    from app.projects.models import Project

    password = ensure_demo()
    again = ensure_demo()

    with unit_of_work(write=False) as db:
        project = db.scalar(select(Project).where(Project.slug == DEMO_SLUG))
        items = db.scalar(select(func.count()).select_from(Item).where(Item.project_id == project.id))
    assert password
    assert again is None
    assert project.review_required is True
    # The admin alone can annotate and then review that work.
    assert project.self_review is True
    assert items > 0
