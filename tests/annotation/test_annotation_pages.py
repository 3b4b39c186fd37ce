"""The annotation workspace pages through a browser-like client: forms, CSRF, htmx fragments."""

import re

import pytest
from annotating import add_candidate, import_prompts, members, set_project, take_next
from fastapi.testclient import TestClient
from support import csrf_of, import_jsonl, login

INLINE_STYLE = re.compile(r"\sstyle\s*=", re.IGNORECASE)
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)


@pytest.fixture
def browser(app):
    """Return a function that opens a logged-in browser-like client for a username."""
    clients = []

    def open_as(username: str) -> TestClient:
        client = TestClient(app, base_url="http://127.0.0.1")
        client.__enter__()
        clients.append(client)
        login(client, username)
        return client

    yield open_as
    for client in clients:
        client.__exit__(None, None, None)


def _take_item(client: TestClient, project: str) -> tuple[int, str]:
    start = client.get(f"/projects/{project}/annotate")
    response = client.post(
        f"/projects/{project}/annotate/next", data={"csrf_token": csrf_of(start.text)}, follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    page = client.get(location)
    assert page.status_code == 200, page.text
    return int(location.rsplit("/", 1)[1]), page.text


def _form_fields(html: str) -> dict[str, str]:
    return {
        "csrf_token": csrf_of(html),
        "version": re.search(r'name="version" id="annotation-version" value="(\d+)"', html).group(1),
        "submit_token": re.search(r'name="submit_token" value="([^"]+)"', html).group(1),
    }


def _complete(html: str, **extra) -> dict[str, str]:
    return {
        **_form_fields(html), "response": "Edited answer", "rating_helpfulness": "4", "rating_correctness": "5",
        "rating_harmlessness": "5", "then": "next", **extra,
    }


def test_workspace_shows_task_and_keeps_csp(admin_api, user_factory, project, browser):
    set_project(admin_api, project, guidelines="## Be *kind*")
    import_prompts(admin_api, project, 2)
    members(user_factory, admin_api, project, "alice")
    client = browser("alice")

    start = client.get(f"/projects/{project}/annotate")
    _, html = _take_item(client, project)

    assert "Start annotating" in start.text
    assert "Prompt number 0" in html
    assert ">Answer number 0</textarea>" in html
    assert "<progress" in html
    assert "<h2>Be <em>kind</em></h2>" in html
    assert 'id="shortcut-help"' in html
    assert '/static/js/annotate.js' in html
    assert 'hx-trigger="input changed delay:1s' in html
    assert not INLINE_STYLE.search(html)
    assert not INLINE_SCRIPT.search(html)
    assert "hx-on" not in html
    assert re.findall(r'(?:src|href)="(https?:)?//', html) == []


def test_start_redirects_to_held_item(admin_api, user_factory, project, browser):
    import_prompts(admin_api, project, 2)
    members(user_factory, admin_api, project, "alice")
    client = browser("alice")
    item_id, _ = _take_item(client, project)

    again = client.get(f"/projects/{project}/annotate", follow_redirects=False)

    assert again.status_code == 303
    assert again.headers["location"].endswith(f"/annotate/items/{item_id}")


def test_submit_form_then_next(admin_api, user_factory, project, browser):
    ids = import_prompts(admin_api, project, 2)
    (alice,) = members(user_factory, admin_api, project, "alice")
    client = browser("alice")
    item_id, html = _take_item(client, project)

    response = client.post(
        f"/projects/{project}/annotate/items/{item_id}/submit", data=_complete(html), follow_redirects=False,
    )

    assert response.status_code == 303
    assert response.headers["location"].endswith(f"/annotate/items/{ids[1]}")
    stored = alice.get(f"/api/v1/projects/{project}/items/{item_id}/annotation").json()
    assert stored["status"] == "submitted"
    assert stored["response"] == "Edited answer"
    assert stored["ratings"] == {"helpfulness": 4, "correctness": 5, "harmlessness": 5}
    assert stored["base_candidate_id"] is None


def test_form_posted_twice_stores_one(admin_api, user_factory, project, browser):
    import_prompts(admin_api, project, 3)
    (alice,) = members(user_factory, admin_api, project, "alice")
    client = browser("alice")
    item_id, html = _take_item(client, project)
    form = _complete(html)
    url = f"/projects/{project}/annotate/items/{item_id}/submit"

    first = client.post(url, data=form, follow_redirects=False)
    second = client.post(url, data=form, follow_redirects=False)

    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    mine = alice.get(f"/api/v1/projects/{project}/items/{item_id}/annotation").json()
    assert mine["version"] == 1
    history = alice.get(f"/api/v1/projects/{project}/items/{item_id}/annotation/history").json()
    assert len(history) == 1


def test_missing_answers_rerender_with_values(admin_api, user_factory, project, browser):
    import_prompts(admin_api, project, 1)
    members(user_factory, admin_api, project, "alice")
    client = browser("alice")
    item_id, html = _take_item(client, project)

    response = client.post(
        f"/projects/{project}/annotate/items/{item_id}/submit",
        data={**_form_fields(html), "response": "kept text", "rating_helpfulness": "2"},
    )

    assert response.status_code == 422
    assert "Not submitted" in response.text
    assert ">kept text</textarea>" in response.text
    assert re.search(r'name="rating_helpfulness" value="2"\s+checked', response.text)


def test_skip_page_moves_on(admin_api, user_factory, project, browser):
    ids = import_prompts(admin_api, project, 2)
    members(user_factory, admin_api, project, "alice")
    client = browser("alice")
    item_id, html = _take_item(client, project)

    response = client.post(
        f"/projects/{project}/annotate/items/{item_id}/skip", data={"csrf_token": csrf_of(html)},
        follow_redirects=False,
    )

    assert response.headers["location"].endswith(f"/annotate/items/{ids[1]}")


def test_nothing_left_page_explains_why(admin_api, user_factory, project, browser):
    import_prompts(admin_api, project, 1)
    alice, _ = members(user_factory, admin_api, project, "alice", "bob")
    take_next(alice, project)
    client = browser("bob")

    start = client.get(f"/projects/{project}/annotate")
    after_next = client.post(
        f"/projects/{project}/annotate/next", data={"csrf_token": csrf_of(start.text)}, follow_redirects=True,
    )

    assert 'data-reason="in_progress"' in start.text
    assert "the remaining items are in progress with other annotators" in after_next.text
    assert "All done" not in after_next.text


def test_candidate_markup_renders_as_text(admin_api, user_factory, project, browser):
    rows = [{"prompt": "Say hi <script>alert(2)</script>", "chosen": "<img src=x onerror=alert(1)>",
             "rejected": "[x](javascript:alert(1))"}]
    assert import_jsonl(admin_api, project, rows).status_code == 201
    members(user_factory, admin_api, project, "alice")
    client = browser("alice")

    _, html = _take_item(client, project)

    assert "<img src=x" not in html
    assert "<script>alert" not in html
    assert 'href="javascript:' not in html.lower()
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "[x](javascript:alert(1))" in html


def test_other_project_item_pages_not_found(admin_api, user_factory, project, browser):
    admin_api.post("/api/v1/projects", json={"slug": "other", "name": "Other"})
    other_ids = import_prompts(admin_api, "other", 1)
    import_prompts(admin_api, project, 1)
    members(user_factory, admin_api, project, "alice")
    client = browser("alice")
    _, html = _take_item(client, project)
    token = {"csrf_token": csrf_of(html)}
    base = f"/projects/{project}/annotate/items/{other_ids[0]}"

    assert client.get(base).status_code == 404
    assert client.post(f"{base}/draft", data=token).status_code == 404
    assert client.post(f"{base}/submit", data=token).status_code == 404
    assert client.post(f"{base}/skip", data=token).status_code == 404
    assert client.get("/projects/other/annotate").status_code == 404


def test_unleased_item_page_not_found(admin_api, user_factory, project, browser):
    ids = import_prompts(admin_api, project, 2)
    members(user_factory, admin_api, project, "alice")
    client = browser("alice")

    response = client.get(f"/projects/{project}/annotate/items/{ids[1]}")

    assert response.status_code == 404


def test_draft_autosave_returns_version_and_diff(admin_api, user_factory, project, browser):
    ids = import_prompts(admin_api, project, 1)
    members(user_factory, admin_api, project, "alice")
    client = browser("alice")
    item_id, html = _take_item(client, project)
    base = re.search(r'id="base-candidate" value="(\d+)"', html).group(1)

    fragment = client.post(
        f"/projects/{project}/annotate/items/{item_id}/draft", headers={"HX-Request": "true"},
        data={**_form_fields(html), "response": "Answer number zero", "base_candidate_id": base},
    )

    assert fragment.status_code == 200
    assert "Draft saved (version 1)" in fragment.text
    assert 'id="annotation-version" value="1" hx-swap-oob="true"' in fragment.text
    assert "<del>0</del><ins>zero</ins>" in fragment.text
    assert ids == [item_id]


def test_stale_draft_answers_conflict_fragment(admin_api, user_factory, project, browser):
    import_prompts(admin_api, project, 1)
    members(user_factory, admin_api, project, "alice")
    client = browser("alice")
    item_id, html = _take_item(client, project)
    url = f"/projects/{project}/annotate/items/{item_id}/draft"
    client.post(url, headers={"HX-Request": "true"}, data={**_form_fields(html), "response": "first tab"})

    stale = client.post(url, headers={"HX-Request": "true"}, data={**_form_fields(html), "response": "second tab"})

    assert stale.status_code == 409
    assert stale.headers["HX-Retarget"] == "#messages"
    assert "Reload the latest version" in stale.text
    assert f'href="/projects/{project}/annotate/items/{item_id}"' in stale.text


def test_stale_submit_page_keeps_unsaved_text(admin_api, user_factory, project, browser):
    import_prompts(admin_api, project, 1)
    members(user_factory, admin_api, project, "alice")
    client = browser("alice")
    item_id, html = _take_item(client, project)
    client.post(
        f"/projects/{project}/annotate/items/{item_id}/draft", data={**_form_fields(html), "response": "other tab"},
    )

    stale = client.post(f"/projects/{project}/annotate/items/{item_id}/submit", data=_complete(html, response="mine"))

    assert stale.status_code == 409
    assert ">mine</textarea>" in stale.text
    assert "Reload the latest version" in stale.text


def test_reopen_submission_until_review(admin_api, user_factory, project, browser):
    import_prompts(admin_api, project, 2)
    (alice,) = members(user_factory, admin_api, project, "alice")
    client = browser("alice")
    item_id, html = _take_item(client, project)
    client.post(f"/projects/{project}/annotate/items/{item_id}/submit", data=_complete(html))
    mine = client.get(f"/projects/{project}/annotate/mine")
    assert f'/annotate/items/{item_id}"' in mine.text

    reopened = client.get(f"/projects/{project}/annotate/items/{item_id}")
    saved = client.post(
        f"/projects/{project}/annotate/items/{item_id}/submit",
        data=_complete(reopened.text, response="Better answer", then="stay"), follow_redirects=False,
    )

    assert "Save changes" in reopened.text
    assert "hx-post" not in reopened.text.split('id="annotation-form"')[1].split(">")[0]
    assert saved.headers["location"].endswith(f"/annotate/items/{item_id}?saved=1")
    stored = alice.get(f"/api/v1/projects/{project}/items/{item_id}/annotation").json()
    assert stored["response"] == "Better answer"
    assert stored["version"] == 2


def test_multi_turn_conversation_shows_roles(admin_api, user_factory, project, browser):
    rows = [{"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "مرحبا"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "今天天气怎么样？"},
    ]}]
    assert import_jsonl(admin_api, project, rows).status_code == 201
    members(user_factory, admin_api, project, "alice")
    client = browser("alice")

    _, html = _take_item(client, project)

    for role in ("role-system", "role-user", "role-assistant"):
        assert role in html
    assert html.index("Be brief.") < html.index("مرحبا") < html.index("Hello!") < html.index("今天天气怎么样？")
    assert 'dir="auto"' in html
    assert 'name="response" id="response" dir="auto"' in html


def test_pairwise_cards_keep_order_on_reload(admin_api, user_factory, project, browser):
    set_project(admin_api, project, settings={"pairwise": {"enabled": True}})
    ids = import_prompts(admin_api, project, 1)
    add_candidate(ids[0], "Model draft text")
    members(user_factory, admin_api, project, "alice")
    client = browser("alice")
    item_id, html = _take_item(client, project)

    reloaded = client.get(f"/projects/{project}/annotate/items/{item_id}").text

    order = re.findall(r'name="preferred" value="(\d+)" data-choice="([AB])"', html)
    assert len(order) == 2
    assert re.findall(r'name="preferred" value="(\d+)" data-choice="([AB])"', reloaded) == order


def test_settings_page_saves_and_validates(admin_api, user_factory, project, browser):
    members(user_factory, admin_api, project, "alice")
    admin = browser("admin")
    page = admin.get(f"/projects/{project}/settings")
    assert page.status_code == 200
    form = {
        "csrf_token": csrf_of(page.text), "annotations_per_item": "2", "review_required": "on",
        "guidelines": "Be kind", "lease_minutes": "15", "response_enabled": "on", "response_required": "on",
        "rubric_enabled": "on", "rubric_required": "on", "scale_min": "1", "scale_max": "7",
        "criteria": "clarity | Clarity | Easy to follow?\nhelpfulness", "flags": "pii | Personal data",
        "ranking_enabled": "on", "note_enabled": "on",
        **{f"key_{action}": key for action, key in (
            ("submit", "Enter"), ("skip", "x"), ("flag", "f"), ("help", "?"), ("edit", "e"),
            ("next_question", "j"), ("previous_question", "k"), ("choose_a", "a"), ("choose_b", "b"))},
    }

    saved = admin.post(f"/projects/{project}/settings", data=form, follow_redirects=False)
    clash = admin.post(f"/projects/{project}/settings", data={**form, "key_skip": "f", "guidelines": "kept"})

    assert saved.status_code == 303
    stored = admin_api.get(f"/api/v1/projects/{project}").json()
    assert stored["annotations_per_item"] == 2
    assert stored["settings"]["lease_s"] == 900
    assert stored["settings"]["rubric"]["scale_max"] == 7
    assert stored["settings"]["rubric"]["criteria"][0] == {
        "key": "clarity", "label": "Clarity", "description": "Easy to follow?",
    }
    assert stored["settings"]["shortcuts"] == {"skip": "x"}
    assert clash.status_code == 422
    assert "used for both skip and flag" in clash.text or "used for both flag and skip" in clash.text
    assert ">kept</textarea>" in clash.text
    assert browser("alice").get(f"/projects/{project}/settings").status_code == 403


def test_chinese_workspace(admin_api, user_factory, project, browser):
    import_prompts(admin_api, project, 1)
    members(user_factory, admin_api, project, "alice")
    client = browser("alice")
    client.headers["Accept-Language"] = "zh-CN,zh;q=0.9"

    _, html = _take_item(client, project)

    assert '<html lang="zh-CN">' in html
    assert "提交并继续" in html
    assert "Submit and next" not in html
