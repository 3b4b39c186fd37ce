"""Suggestion jobs against a stand-in OpenAI-compatible server on 127.0.0.1 (no model is loaded)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select
from support import import_jsonl

from app.db import unit_of_work
from app.items.models import Candidate
from app.jobs.worker import Worker

ROWS = [{"instruction": f"Prompt number {number}", "input": "", "output": ""} for number in range(12)]


class _CompletionServer(ThreadingHTTPServer):
    def __init__(self, status: int) -> None:
        super().__init__(("127.0.0.1", 0), _CompletionHandler)
        self.status = status
        self.requests: list[dict] = []
        self.authorization: list[str | None] = []


class _CompletionHandler(BaseHTTPRequestHandler):
    server: _CompletionServer

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, **body})
        self.server.authorization.append(self.headers.get("Authorization"))
        if self.server.status != 200:
            payload = {"error": {"message": "model overloaded"}}
        else:
            payload = {"choices": [{"message": {"role": "assistant", "content": f"Draft {len(self.server.requests)}"}}]}
        data = json.dumps(payload).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args) -> None:
        return


@pytest.fixture
def completion_server(request, monkeypatch):
    from app.config import get_settings

    server = _CompletionServer(getattr(request, "param", 200))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("SFTDESK_SUGGEST_ENDPOINT_URL", f"http://127.0.0.1:{server.server_port}/v1")
    get_settings.cache_clear()
    yield server
    server.shutdown()
    server.server_close()
    get_settings.cache_clear()


def _queue_suggest(admin_api, project: str, limit: int) -> int:
    response = admin_api.post(f"/api/v1/projects/{project}/jobs", json={
        "kind": "suggest", "params": {"source": "endpoint", "model": "stand-in-model", "limit": limit, "max_new_tokens": 32},
    })
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _drafts() -> list[tuple[int, str, str, int | None]]:
    with unit_of_work(write=False) as db:
        return [tuple(row) for row in db.execute(
            select(Candidate.item_id, Candidate.text, Candidate.model_name, Candidate.run_id)
            .where(Candidate.source == "model").order_by(Candidate.id)
        )]


def test_endpoint_drafts_pending_items(admin_api, project, completion_server, load_job) -> None:
    from app.config import get_settings

    assert import_jsonl(admin_api, project, ROWS, shape="alpaca").status_code == 201
    first = _queue_suggest(admin_api, project, 5)
    second = _queue_suggest(admin_api, project, 5)

    ran = Worker(settings=get_settings(), tick_s=0.1).run(exit_when_idle=True)

    drafts = _drafts()
    assert ran == 2
    assert load_job(first).status == "succeeded"
    assert load_job(first).result["drafted"] == 5
    assert load_job(second).result["drafted"] == 5
    assert len(drafts) == 10
    assert len({item_id for item_id, *_ in drafts}) == 10
    assert {model_name for _, _, model_name, _ in drafts} == {"stand-in-model"}
    assert {run_id for *_, run_id in drafts} == {None}
    assert completion_server.requests[0]["path"] == "/v1/chat/completions"
    assert completion_server.requests[0]["model"] == "stand-in-model"
    assert completion_server.requests[0]["max_tokens"] == 32
    assert completion_server.requests[0]["messages"][-1] == {"role": "user", "content": "Prompt number 0"}
    assert completion_server.authorization == [None] * 10


@pytest.mark.parametrize("completion_server", [503], indirect=True)
def test_endpoint_errors_are_retried(admin_api, project, completion_server, load_job) -> None:
    from app.config import get_settings

    assert import_jsonl(admin_api, project, ROWS[:2], shape="alpaca").status_code == 201
    job_id = _queue_suggest(admin_api, project, 2)

    Worker(settings=get_settings(), tick_s=0.1, retry_base_s=0).run(exit_when_idle=True)

    job = load_job(job_id)
    assert job.status == "failed"
    assert job.attempts == 3
    assert "HTTP 503" in job.error
    assert job.log.count("retry after") == 2
    assert _drafts() == []
