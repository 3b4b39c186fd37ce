"""The request session: committed by the route's own worker thread, rolled back when the route fails."""

from fastapi import APIRouter, FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.auth.models import User
from app.deps import DB, SESSION_ENDED, TransactionRoute
from app.errors import Conflict
from app.main import _domain_error


def _app_with_routes(seen: dict) -> FastAPI:
    router = APIRouter(route_class=TransactionRoute)

    def add_user(db: DB, name: str) -> User:
        user = User(username=name, display_name=name, password_hash="x", role="annotator")
        db.add(user)
        db.flush()
        return user

    @router.post("/users/{name}")
    def create(name: str, db: DB) -> dict:
        add_user(db, name)
        seen["session"] = db
        return {"created": name}

    @router.post("/users/{name}/then-fail")
    def create_then_fail(name: str, db: DB) -> dict:
        add_user(db, name)
        raise Conflict(f"rejected {name} after writing it")

    @router.post("/users/{name}/async")
    async def create_async(name: str, db: DB) -> dict:
        await run_in_threadpool(add_user, db, name)
        seen["async_session"] = db
        return {"created": name}

    app = FastAPI()
    app.add_exception_handler(Conflict, _domain_error)
    app.include_router(router)
    return app


def _usernames() -> list[str]:
    from app.db import unit_of_work

    with unit_of_work(write=False) as db:
        return list(db.scalars(select(User.username).order_by(User.username)))


def test_sync_route_commits_in_its_thread(db_ready):
    seen = {}
    with TestClient(_app_with_routes(seen)) as client:
        response = client.post("/users/ada")
    assert response.status_code == 200, response.text
    assert _usernames() == ["ada"]
    assert seen["session"].info[SESSION_ENDED] is True
    assert not seen["session"].in_transaction()


def test_failing_route_leaves_nothing(db_ready):
    with TestClient(_app_with_routes({})) as client:
        response = client.post("/users/bob/then-fail")
        assert response.status_code == 409
        assert client.post("/users/carol").status_code == 200
    assert _usernames() == ["carol"]


def test_async_route_committed_by_dependency(db_ready):
    seen = {}
    with TestClient(_app_with_routes(seen)) as client:
        assert client.post("/users/dan/async").status_code == 200
    assert _usernames() == ["dan"]
    assert SESSION_ENDED not in seen["async_session"].info
    assert not seen["async_session"].in_transaction()


def _count_worker_thread_trips(monkeypatch) -> list:
    """Record every function that FastAPI or the app sends to a worker thread."""
    import anyio.to_thread

    trips = []
    original = anyio.to_thread.run_sync

    async def counting_run_sync(function, *args, **kwargs):
        # Starlette passes the function wrapped in functools.partial.
        trips.append(getattr(function, "func", function).__name__)
        return await original(function, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting_run_sync)
    return trips


def test_queue_request_worker_thread_trips(client, admin_api, project, user_factory, monkeypatch):
    from app.db import get_engine
    from support import import_jsonl

    import_jsonl(admin_api, project, [{"instruction": "Say hi", "output": "Hi"}]).raise_for_status()
    annotator = user_factory("ann1")
    admin_api.put(f"/api/v1/projects/{project}/members/ann1", json={"role": "annotator"}).raise_for_status()
    trips = _count_worker_thread_trips(monkeypatch)

    leased = annotator.post(f"/api/v1/projects/{project}/queue/next")
    progress = annotator.get(f"/api/v1/projects/{project}/queue/progress")

    assert leased.status_code == 200, leased.text
    assert leased.json()["item"] is not None
    assert progress.status_code == 200, progress.text
    if get_engine().dialect.name == "sqlite":
        # The short_write lease runs on the event loop in its writer turn; the read goes to a thread.
        assert trips == ["run_and_commit"]
    else:
        # The caller's lookup, the endpoint and the commit share one trip per request.
        assert trips == ["run_and_commit", "run_and_commit"]


def test_missing_credentials_rejected_before_body_check(client, project):
    response = client.post(f"/api/v1/projects/{project}/items/1/annotation", json={"version": "not a number"})

    assert response.status_code == 401, response.text
    assert "Bearer" in response.json()["error"]["message"]


def test_invalid_token_rejected_in_endpoint_thread(client, project):
    response = client.post(
        f"/api/v1/projects/{project}/queue/next", headers={"Authorization": "Bearer sft_not-a-real-token"},
    )

    assert response.status_code == 401, response.text
    assert "invalid or revoked API token" in response.json()["error"]["message"]


def test_page_without_session_redirects_to_login(client, project):
    response = client.post(f"/projects/{project}/annotate/next", follow_redirects=False)

    assert response.status_code in (303, 302), response.text
    assert "/login" in response.headers["location"]
