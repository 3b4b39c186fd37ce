"""Every router of the application, in one place so create_app stays short."""

from fastapi import APIRouter


def all_routers() -> list[APIRouter]:
    from app.annotation import api as annotation_api
    from app.annotation import pages as annotation_pages
    from app.annotation import settings_page as annotation_settings_page
    from app.auth import api as auth_api
    from app.auth import pages as auth_pages
    from app.items import api as items_api
    from app.items import pages as items_pages
    from app.jobs import api as jobs_api
    from app.jobs import pages as jobs_pages
    from app.projects import api as projects_api
    from app.projects import pages as projects_pages
    from app.review import api as review_api
    from app.review import pages as review_pages
    from app.runs import api as runs_api
    from app.runs import pages as runs_pages
    from app.snapshots import api as snapshots_api
    from app.snapshots import pages as snapshots_pages

    # Routes are tried in order, so the annotation queue and review, which annotators call
    # several times a minute each, come first.
    return [
        annotation_api.router, annotation_pages.router, review_api.router, review_pages.router,
        auth_api.router, projects_api.router, items_api.router, snapshots_api.router,
        auth_pages.router, projects_pages.router, items_pages.router, snapshots_pages.router,
        jobs_api.router, runs_api.router, jobs_pages.router, runs_pages.router,
        annotation_settings_page.router,
    ]
