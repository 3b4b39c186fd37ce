"""Every router of the application, in one place so create_app stays short."""

from fastapi import APIRouter


def all_routers() -> list[APIRouter]:
    from app.auth import api as auth_api
    from app.auth import pages as auth_pages
    from app.items import api as items_api
    from app.items import pages as items_pages
    from app.projects import api as projects_api
    from app.projects import pages as projects_pages
    from app.snapshots import api as snapshots_api
    from app.snapshots import pages as snapshots_pages

    return [
        auth_api.router, projects_api.router, items_api.router, snapshots_api.router,
        auth_pages.router, projects_pages.router, items_pages.router, snapshots_pages.router,
    ]
