"""32 annotators at once against a real uvicorn server: no duplicates, no lost submissions, no errors."""

import secrets
import socket
import threading
import time
from collections import Counter, defaultdict

import anyio
import httpx
import pytest
import uvicorn
from anyio._backends._asyncio import AsyncIOBackend
from annotating import (
    COMPLETE_RATINGS,
    annotations_by_item,
    import_prompts,
    members,
    set_project,
)

ANNOTATORS = 32
ITEMS = 120
OVERLAP = 2


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def live_server(app):
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=20)


def _annotate_until_done(base_url: str, project: str, token: str, log: dict) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        while True:
            offered = client.post(f"/api/v1/projects/{project}/queue/next")
            if offered.status_code != 200:
                log["errors"].append(("next", offered.status_code, offered.text[:200]))
                return
            body = offered.json()
            if body["item"] is None:
                if body["reason"] == "in_progress":
                    time.sleep(0.02)
                    continue
                return
            item_id = body["item"]["id"]
            log["offered"].append(item_id)
            submitted = client.post(
                f"/api/v1/projects/{project}/items/{item_id}/annotation",
                json={"response": f"answer {item_id}", "ratings": COMPLETE_RATINGS, "version": 0,
                      "submit_token": secrets.token_hex(8)},
            )
            if submitted.status_code != 200:
                log["errors"].append(("submit", submitted.status_code, submitted.text[:200]))
                return
            log["submitted"].append(item_id)


def _run_annotators(admin_api, user_factory, project, live_server, *, annotators: int, items: int, overlap: int):
    set_project(admin_api, project, annotations_per_item=overlap)
    ids = import_prompts(admin_api, project, items)
    names = [f"annotator{i:02d}" for i in range(annotators)]
    apis = members(user_factory, admin_api, project, *names)
    logs = {api.username: defaultdict(list) for api in apis}

    threads = [
        threading.Thread(target=_annotate_until_done, args=(live_server, project, api.token, logs[api.username]))
        for api in apis
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    errors = [error for log in logs.values() for error in log["errors"]]
    assert errors == []
    assert not any(thread.is_alive() for thread in threads)
    for username, log in logs.items():
        assert len(log["offered"]) == len(set(log["offered"])), username
    offered_to = Counter(item_id for log in logs.values() for item_id in log["offered"])
    assert max(offered_to.values()) <= overlap
    stored = annotations_by_item(project)
    assert sorted(stored) == ids
    for item_id, rows in stored.items():
        assert len(rows) == overlap, item_id
        assert len({user_id for user_id, _ in rows}) == overlap, item_id
    submitted = sum(len(log["submitted"]) for log in logs.values())
    assert submitted == items * overlap


def test_many_annotators_at_once(admin_api, user_factory, project, live_server):
    _run_annotators(admin_api, user_factory, project, live_server, annotators=ANNOTATORS, items=ITEMS, overlap=OVERLAP)


@pytest.fixture
def small_threadpool(monkeypatch):
    """Give the server 3 worker threads instead of anyio's 40, so a test can outnumber them."""
    limiters = {}

    def limiter(cls):
        # Created on first use, inside the server's event loop.
        if "pool" not in limiters:
            limiters["pool"] = anyio.CapacityLimiter(3)
        return limiters["pool"]

    monkeypatch.setattr(AsyncIOBackend, "current_default_thread_limiter", classmethod(limiter))


def test_more_writers_than_worker_threads(small_threadpool, admin_api, user_factory, project, live_server):
    """Writers waiting for SQLite's writer turn must not hold the worker threads the current writer needs."""
    _run_annotators(admin_api, user_factory, project, live_server, annotators=12, items=36, overlap=1)
