import io
import json

import orjson
from sqlalchemy import func, select

from support import import_jsonl

XSS_PROMPT = "<img src=x onerror=\"document.title='x'\">Summarise this"
XSS_RESPONSE = "<script>window.y=1</script>ok"


def _items(project_slug):
    from app.db import unit_of_work
    from app.items.models import Item
    from app.projects.models import Project

    with unit_of_work(write=False) as db:
        return list(db.scalars(
            select(Item).join(Project, Project.id == Item.project_id).where(Project.slug == project_slug).order_by(Item.id)
        ))


def _candidates(item_id):
    from app.db import unit_of_work
    from app.items.models import Candidate

    with unit_of_work(write=False) as db:
        return list(db.scalars(select(Candidate).where(Candidate.item_id == item_id).order_by(Candidate.id)))


def test_import_json_array_body(admin_api, project):
    rows = [{"instruction": "Say hi", "input": "", "output": "Hi"}, {"instruction": "Say bye", "input": "", "output": "Bye"}]
    response = admin_api.post(f"/api/v1/projects/{project}/items", json=rows)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["created"] == 2
    assert body["duplicates"] == 0
    assert body["rejected"] == 0
    assert body["shape"] == "alpaca"
    assert len(_items(project)) == 2


def test_import_multipart_upload(admin_api, project):
    content = b'{"messages": [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there"}]}\n'
    response = admin_api.post(
        f"/api/v1/projects/{project}/items", files={"file": ("chat.jsonl", io.BytesIO(content), "application/octet-stream")},
    )
    assert response.status_code == 201, response.text
    assert response.json()["created"] == 1
    item = _items(project)[0]
    assert item.messages == [{"role": "user", "content": "Hello"}]
    assert [c.text for c in _candidates(item.id)] == ["Hi there"]


def test_reimport_same_file_adds_nothing(admin_api, project):
    rows = [{"prompt": f"Question {n}", "completion": f"Answer {n}"} for n in range(5)]
    first = import_jsonl(admin_api, project, rows).json()
    second = import_jsonl(admin_api, project, rows).json()
    assert first["created"] == 5
    assert second["created"] == 0
    assert second["duplicates"] == 5
    assert len(_items(project)) == 5


def test_external_id_makes_import_idempotent(admin_api, project):
    rows = [{"id": "q-1", "messages": [{"role": "user", "content": "One"}, {"role": "assistant", "content": "1"}]}]
    import_jsonl(admin_api, project, rows)
    rows[0]["messages"][1]["content"] = "one"
    second = import_jsonl(admin_api, project, rows).json()
    assert second["created"] == 0
    assert second["duplicates"] == 1
    assert _items(project)[0].external_id == "q-1"


def test_normalized_duplicates_reported(admin_api, project):
    rows = [
        {"prompt": "What is  2+2?", "completion": "4"},
        {"prompt": "what is 2+2?", "completion": "4"},
    ]
    body = import_jsonl(admin_api, project, rows).json()
    assert body["created"] == 1
    assert body["duplicates"] == 1


def test_bad_rows_rejected_rest_kept(admin_api, project):
    rows = [
        {"messages": [{"role": "user", "content": "ok one"}, {"role": "assistant", "content": "fine"}]},
        {"messages": [{"role": "wizard", "content": "bad role"}, {"role": "assistant", "content": "x"}]},
        {"messages": [{"role": "user", "content": None}, {"role": "assistant", "content": "x"}]},
        {"messages": [{"role": "user", "content": 42}, {"role": "assistant", "content": "x"}]},
        {"messages": [{"role": "user", "content": "ok two"}, {"role": "assistant", "content": "fine"}]},
    ]
    body = import_jsonl(admin_api, project, rows).json()
    assert body["created"] == 2
    assert body["rejected"] == 3
    assert [e["record"] for e in body["errors"]] == [2, 3, 4]
    assert "wizard" in body["errors"][0]["reason"]
    assert all(e["reason"] for e in body["errors"])


def test_rejected_rows_paginated(admin_api, project):
    rows = [{"messages": [{"role": "nobody", "content": str(n)}]} for n in range(7)]
    body = import_jsonl(admin_api, project, rows).json()
    page = admin_api.get(body["errors_url"], params={"page": 2, "page_size": 3}).json()
    assert page["total"] == 7
    assert page["pages"] == 3
    assert [e["record"] for e in page["items"]] == [4, 5, 6]


def test_lone_surrogate_row_rejected_rest_imported(admin_api, project):
    body = (
        b'{"prompt": "fine", "completion": "yes"}\n'
        b'{"prompt": "broken \\ud83d here", "completion": "no"}\n'
        b'{"prompt": "also fine", "completion": "yes"}\n'
    )
    response = admin_api.post(
        f"/api/v1/projects/{project}/items", content=body, headers={"Content-Type": "application/jsonl"},
    ).json()
    assert response["created"] == 2
    assert response["rejected"] == 1
    assert response["errors"][0]["record"] == 2
    assert "surrogate" in response["errors"][0]["reason"].lower()


def test_lone_surrogate_in_json_array(admin_api, project):
    body = b'[{"prompt": "a", "completion": "b"}, {"prompt": "\\ud83d", "completion": "c"}, {"prompt": "d", "completion": "e"}]'
    response = admin_api.post(
        f"/api/v1/projects/{project}/items", content=body, headers={"Content-Type": "application/json"},
    ).json()
    assert response["created"] == 2
    assert response["errors"][0]["record"] == 2


def test_huge_response_names_size_limit(admin_api, project):
    rows = [{"instruction": "Long one", "input": "", "output": "x" * 200_000}]
    body = import_jsonl(admin_api, project, rows).json()
    assert body["rejected"] == 1
    reason = body["errors"][0]["reason"]
    assert "100000" in reason.replace(",", "")
    assert "SFTDESK_MAX_TEXT_CHARS" in reason
    assert "invalid format" not in reason.lower()


def test_huge_response_imports_when_limit_raised(admin_api, project, monkeypatch):
    from app.config import get_settings

    monkeypatch.setenv("SFTDESK_MAX_TEXT_CHARS", "300000")
    get_settings.cache_clear()
    body = import_jsonl(admin_api, project, [{"instruction": "Long one", "input": "", "output": "x" * 200_000}]).json()
    assert body["created"] == 1
    assert len(_candidates(_items(project)[0].id)[0].text) == 200_000


def test_alpaca_empty_output_needs_response(admin_api, project):
    body = import_jsonl(admin_api, project, [{"instruction": "Write a poem", "input": "", "output": ""}]).json()
    assert body["created"] == 1
    item = _items(project)[0]
    assert item.status == "new"
    assert _candidates(item.id) == []

    snapshot = admin_api.post(f"/api/v1/projects/{project}/snapshots", json={"include_unreviewed": True}).json()
    assert snapshot["row_counts"]["items"] == 0
    assert snapshot["row_counts"]["without_response"] == 1


def test_csv_with_commas_quotes_newlines(admin_api, project):
    csv_bytes = (
        'question,answer\r\n'
        '"Hello, world","He said ""hi""\nand left"\r\n'
        '"Line one\r\nline two","a, b, c"\r\n'
    ).encode()
    response = admin_api.post(
        f"/api/v1/projects/{project}/items", files={"file": ("qa.csv", io.BytesIO(csv_bytes), "text/csv")},
        params={"csv_map": "prompt=question,response=answer"},
    ).json()
    assert response["created"] == 2, response
    items = _items(project)
    assert items[0].messages[0]["content"] == "Hello, world"
    assert _candidates(items[0].id)[0].text == 'He said "hi"\nand left'
    assert items[1].messages[0]["content"] == "Line one\r\nline two"

    snapshot = admin_api.post(
        f"/api/v1/projects/{project}/snapshots", json={"include_unreviewed": True, "validation_fraction": 0},
    ).json()
    exported = admin_api.get(f"/api/v1/projects/{project}/snapshots/{snapshot['number']}/files/train.messages.jsonl")
    lines = [json.loads(line) for line in exported.content.splitlines()]
    assert lines[0]["messages"][0]["content"] == "Hello, world"
    assert lines[0]["messages"][1]["content"] == 'He said "hi"\nand left'
    assert lines[1]["messages"][0]["content"] == "Line one\r\nline two"


def test_gbk_needs_encoding_option(admin_api, project):
    csv_bytes = "问题,回答\n你好吗,我很好\n".encode("gbk")
    failed = admin_api.post(
        f"/api/v1/projects/{project}/items", files={"file": ("zh.csv", io.BytesIO(csv_bytes), "text/csv")},
        params={"csv_map": "prompt=问题,response=回答"},
    )
    assert failed.status_code == 422
    assert "encoding" in failed.json()["error"]["message"]

    response = admin_api.post(
        f"/api/v1/projects/{project}/items", files={"file": ("zh.csv", io.BytesIO(csv_bytes), "text/csv")},
        params={"csv_map": "prompt=问题,response=回答", "encoding": "gbk"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["created"] == 1
    assert _items(project)[0].messages[0]["content"] == "你好吗"


def test_utf8_bom_and_utf16_bom(admin_api, project):
    row = {"prompt": "BOM prompt", "completion": "done"}
    utf8 = b"\xef\xbb\xbf" + orjson.dumps(row) + b"\n"
    utf16 = (json.dumps({"prompt": "UTF-16 prompt", "completion": "ok"}, ensure_ascii=False) + "\n").encode("utf-16")
    for name, payload in (("a.jsonl", utf8), ("b.jsonl", utf16)):
        response = admin_api.post(
            f"/api/v1/projects/{project}/items", files={"file": (name, io.BytesIO(payload), "application/octet-stream")},
        )
        assert response.status_code == 201, response.text
        assert response.json()["created"] == 1
    prompts = [item.messages[0]["content"] for item in _items(project)]
    assert prompts == ["BOM prompt", "UTF-16 prompt"]


def test_not_json_gives_clear_error(admin_api, project):
    response = admin_api.post(
        f"/api/v1/projects/{project}/items", content=b"just words here",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert "text" in message


def test_xss_text_stored_verbatim(admin_api, project):
    import_jsonl(admin_api, project, [{"prompt": XSS_PROMPT, "completion": XSS_RESPONSE}])
    item = _items(project)[0]
    assert item.messages[0]["content"] == XSS_PROMPT
    detail = admin_api.get(f"/api/v1/projects/{project}/items/{item.id}").json()
    assert detail["messages"][0]["content"] == XSS_PROMPT
    assert detail["candidates"][0]["text"] == XSS_RESPONSE


def test_annotator_cannot_import(user_factory, admin_api, project):
    annotator = user_factory("ann")
    admin_api.put(f"/api/v1/projects/{project}/members/ann", json={"role": "annotator"})
    response = import_jsonl(annotator, project, [{"prompt": "x", "completion": "y"}])
    assert response.status_code == 403


def test_upload_size_limit(admin_api, project, monkeypatch):
    from app.config import get_settings

    monkeypatch.setenv("SFTDESK_MAX_UPLOAD_BYTES", "100")
    get_settings.cache_clear()
    response = import_jsonl(admin_api, project, [{"prompt": "x" * 200, "completion": "y"}])
    assert response.status_code == 413
    assert "SFTDESK_MAX_UPLOAD_BYTES" in response.json()["error"]["message"]
    assert len(_items(project)) == 0


def test_import_counts_batches(admin_api, project, monkeypatch):
    from app.config import get_settings

    monkeypatch.setenv("SFTDESK_IMPORT_BATCH_ROWS", "7")
    get_settings.cache_clear()
    rows = [{"prompt": f"p{n}", "completion": "c"} for n in range(50)] + [{"prompt": 5, "completion": "c"}]
    body = import_jsonl(admin_api, project, rows).json()
    assert body["created"] == 50
    assert body["rejected"] == 1
    record = admin_api.get(f"/api/v1/projects/{project}/imports/{body['import_id']}").json()
    assert record["created"] == 50
    assert record["rejected"] == 1
