"""The review page through a browser-like client."""

import re

from annotating import import_prompts, item_row, members, submit, take_next
from fastapi.testclient import TestClient
from support import csrf_of, login


def _logged_in(app, username: str) -> TestClient:
    client = TestClient(app, base_url="http://127.0.0.1")
    login(client, username)
    return client


def test_review_page_lists_and_accepts(app, admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 2)
    (alice,) = members(user_factory, admin_api, project, "alice")
    take_next(alice, project)
    submit(alice, project, ids[0], response="**bold** answer <img src=x onerror=alert(1)>", note="check me")
    with _logged_in(app, "admin") as reviewer:
        page = reviewer.get(f"/projects/{project}/review")
        annotation_id = re.search(r'id="review-(\d+)"', page.text).group(1)

        decided = reviewer.post(
            f"/projects/{project}/review/{annotation_id}", headers={"HX-Request": "true"},
            data={"csrf_token": csrf_of(page.text), "decision": "accept", "comment": "好", "version": "1"},
        )

    assert page.status_code == 200
    assert "Prompt number 0" in page.text
    assert "<strong>bold</strong> answer &lt;img src=x onerror=alert(1)&gt;" in page.text
    assert "Helpfulness" in page.text
    assert "check me" in page.text
    assert "/static/js/review.js" in page.text
    assert not re.search(r"\sstyle\s*=", page.text)
    assert decided.status_code == 200
    assert "data-decided" in decided.text
    assert "好" in decided.text
    assert item_row(ids[0]).status == "accepted"


def test_review_form_without_htmx_redirects(app, admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 1)
    (alice,) = members(user_factory, admin_api, project, "alice")
    take_next(alice, project)
    annotation = submit(alice, project, ids[0]).json()
    with _logged_in(app, "admin") as reviewer:
        page = reviewer.get(f"/projects/{project}/review")
        response = reviewer.post(
            f"/projects/{project}/review/{annotation['id']}",
            data={"csrf_token": csrf_of(page.text), "decision": "reject", "page": "1"}, follow_redirects=False,
        )
        after = reviewer.get(f"/projects/{project}/review")

    assert response.status_code == 303
    assert response.headers["location"] == f"/projects/{project}/review?page=1"
    assert "Nothing waits for review." in after.text
    assert item_row(ids[0]).status == "new"


def test_review_page_needs_reviewer_role(app, admin_api, user_factory, project):
    members(user_factory, admin_api, project, "alice")
    with _logged_in(app, "alice") as annotator:
        assert annotator.get(f"/projects/{project}/review").status_code == 403


def test_review_page_counts_own_annotations(app, admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 2)
    (alice,) = members(user_factory, admin_api, project, "alice")
    take_next(admin_api, project)
    submit(admin_api, project, ids[0], response="The manager's own answer")
    take_next(alice, project)
    submit(alice, project, ids[1], response="Alice's answer")
    with _logged_in(app, "admin") as reviewer:
        page = reviewer.get(f"/projects/{project}/review")

    assert page.status_code == 200
    assert "Alice&#39;s answer" in page.text or "Alice's answer" in page.text
    assert "The manager&#39;s own answer" not in page.text
    assert "The manager's own answer" not in page.text
    assert "1 annotation of yours waits for another reviewer" in page.text


def test_settings_page_saves_self_review(app, admin_api, project):
    with _logged_in(app, "admin") as manager:
        page = manager.get(f"/projects/{project}/settings")
        form = {
            "csrf_token": csrf_of(page.text), "annotations_per_item": "1", "review_required": "on",
            "self_review": "on", "guidelines": "", "scale_min": "1", "scale_max": "5",
            "criteria": "helpfulness\ncorrectness\nharmlessness", "flags": "", "lease_minutes": "",
            "response_enabled": "on", "response_required": "on", "rubric_enabled": "on", "rubric_required": "on",
            **{f"key_{action}": key for action, key in (
                ("submit", "Enter"), ("skip", "s"), ("flag", "f"), ("help", "?"), ("edit", "e"),
                ("next_question", "j"), ("previous_question", "k"), ("choose_a", "a"), ("choose_b", "b"))},
        }
        saved = manager.post(f"/projects/{project}/settings", data=form, follow_redirects=False)
        reloaded = manager.get(f"/projects/{project}/settings")

    assert page.status_code == 200
    assert 'name="self_review"' in page.text
    assert saved.status_code == 303, saved.text
    assert admin_api.get(f"/api/v1/projects/{project}").json()["self_review"] is True
    assert re.search(r'name="self_review"\s+checked', reloaded.text)
