"""Review through the REST API: the pending list, decisions, item status, snapshots."""

import json

from annotating import (
    add_candidate,
    import_prompts,
    item_row,
    members,
    set_project,
    submit,
    take_next,
    work_through,
)


def _pending(api, project: str, **params) -> dict:
    response = api.get(f"/api/v1/projects/{project}/reviews/pending", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _decide(api, project: str, annotation_id: int, decision: str, **body):
    return api.post(
        f"/api/v1/projects/{project}/annotations/{annotation_id}/review", json={"decision": decision, **body}
    )


def _snapshot_rows(admin_api, project: str, fmt: str) -> list[dict]:
    created = admin_api.post(f"/api/v1/projects/{project}/snapshots", json={"validation_fraction": 0})
    assert created.status_code == 201, created.text
    number = created.json()["number"]
    response = admin_api.get(f"/api/v1/projects/{project}/snapshots/{number}/files/train.{fmt}.jsonl")
    if response.status_code == 404:
        return []
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines() if line]


def test_pending_list_is_oldest_first_and_paginated(admin_api, user_factory, project):
    import_prompts(admin_api, project, 3)
    alice, bob = members(user_factory, admin_api, project, "alice", "bob")
    (carol,) = members(user_factory, admin_api, project, "carol", role="reviewer")
    first = work_through(alice, project)["item"]["id"]
    second = work_through(bob, project)["item"]["id"]
    third = work_through(alice, project)["item"]["id"]

    page_one = _pending(carol, project, page=1, page_size=2)
    page_two = _pending(carol, project, page=2, page_size=2)

    assert page_one["total"] == 3
    assert page_one["pages"] == 2
    assert [row["item_id"] for row in page_one["items"]] == [first, second]
    assert [row["item_id"] for row in page_two["items"]] == [third]
    assert page_one["items"][0]["annotation"]["username"] == "alice"
    assert page_one["items"][0]["prompt_text"] == "Prompt number 0"


def test_annotator_cannot_review(admin_api, user_factory, project):
    import_prompts(admin_api, project, 1)
    (alice,) = members(user_factory, admin_api, project, "alice")
    work_through(alice, project)

    assert alice.get(f"/api/v1/projects/{project}/reviews/pending").status_code == 403
    assert _decide(alice, project, 1, "accept").status_code == 403


def test_accept_makes_item_accepted_and_exported(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 2)
    (alice,) = members(user_factory, admin_api, project, "alice")
    take_next(alice, project)
    annotation = submit(alice, project, ids[0], response="Reviewed answer 中文").json()

    decided = _decide(admin_api, project, annotation["id"], "accept", comment="good", version=annotation["version"])

    assert decided.status_code == 201, decided.text
    assert decided.json()["annotation_status"] == "accepted"
    assert decided.json()["item_status"] == "accepted"
    assert item_row(ids[0]).status == "accepted"
    rows = _snapshot_rows(admin_api, project, "prompt_completion")
    assert [row["completion"] for row in rows] == [[{"role": "assistant", "content": "Reviewed answer 中文"}]]
    assert _pending(admin_api, project)["total"] == 0


def test_accepted_annotation_cannot_change(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 1)
    (alice,) = members(user_factory, admin_api, project, "alice")
    take_next(alice, project)
    annotation = submit(alice, project, ids[0]).json()
    _decide(admin_api, project, annotation["id"], "accept")

    late = submit(alice, project, ids[0], version=2, response="too late")
    again = _decide(admin_api, project, annotation["id"], "reject")

    assert late.status_code == 409
    assert "already accepted" in late.json()["error"]["message"]
    assert again.status_code == 409


def test_review_of_changed_annotation_conflicts(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 1)
    (alice,) = members(user_factory, admin_api, project, "alice")
    take_next(alice, project)
    seen = submit(alice, project, ids[0]).json()
    submit(alice, project, ids[0], version=seen["version"], response="changed after the reviewer loaded it")

    decided = _decide(admin_api, project, seen["id"], "accept", version=seen["version"])

    assert decided.status_code == 409
    assert "changed by its annotator" in decided.json()["error"]["message"]


def test_overlap_two_accepts_when_one_accepted(admin_api, user_factory, project):
    set_project(admin_api, project, annotations_per_item=2)
    ids = import_prompts(admin_api, project, 1)
    alice, bob = members(user_factory, admin_api, project, "alice", "bob")
    first = work_through(alice, project)
    assert first["item"]["id"] == ids[0]
    annotations = [row["annotation"] for row in _pending(admin_api, project)["items"]]

    _decide(admin_api, project, annotations[0]["id"], "accept")
    assert item_row(ids[0]).status == "new"
    work_through(bob, project)

    assert item_row(ids[0]).status == "accepted"


def test_all_rejected_returns_item_to_pool(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 1)
    alice, bob = members(user_factory, admin_api, project, "alice", "bob")
    work_through(alice, project)
    assert item_row(ids[0]).status == "annotated"
    annotation_id = _pending(admin_api, project)["items"][0]["annotation"]["id"]

    rejected = _decide(admin_api, project, annotation_id, "reject", comment="wrong facts")

    assert rejected.json()["item_status"] == "new"
    assert item_row(ids[0]).annotation_count == 0
    assert take_next(alice, project)["item"] is None
    assert take_next(bob, project)["item"]["id"] == ids[0]
    reviews = admin_api.get(f"/api/v1/projects/{project}/annotations/{annotation_id}/reviews").json()
    assert [(r["decision"], r["comment"], r["reviewer"]) for r in reviews] == [("reject", "wrong facts", "admin")]


def test_review_writes_history(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 1)
    (alice,) = members(user_factory, admin_api, project, "alice")
    take_next(alice, project)
    annotation = submit(alice, project, ids[0]).json()

    _decide(admin_api, project, annotation["id"], "accept")

    history = alice.get(f"/api/v1/projects/{project}/items/{ids[0]}/annotation/history").json()
    assert [(h["version"], h["status"], h["username"]) for h in history] == [
        (1, "submitted", "alice"), (2, "accepted", "admin"),
    ]


def test_accepted_ranking_exports_preference_pair(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 2)
    second = add_candidate(ids[0], "A better model answer")
    third = add_candidate(ids[0], "A worse model answer")
    first = admin_api.get(f"/api/v1/projects/{project}/items/{ids[0]}").json()["candidates"][0]["id"]
    (alice,) = members(user_factory, admin_api, project, "alice")
    take_next(alice, project)
    annotation = submit(
        alice, project, ids[0], ranking={str(first): 2, str(second): 1, str(third): 3},
    ).json()
    _decide(admin_api, project, annotation["id"], "accept")

    rows = _snapshot_rows(admin_api, project, "preference")

    assert len(rows) == 1
    assert rows[0]["chosen"] == [{"role": "assistant", "content": "A better model answer"}]
    assert rows[0]["rejected"] == [{"role": "assistant", "content": "A worse model answer"}]


def test_imported_pair_wins_over_ranking(admin_api, user_factory, project):
    from support import import_jsonl

    import_jsonl(admin_api, project, [{"prompt": "Pick one", "chosen": "imported good", "rejected": "imported bad"}])
    detail = admin_api.get(f"/api/v1/projects/{project}/items").json()["items"][0]
    candidates = admin_api.get(f"/api/v1/projects/{project}/items/{detail['id']}").json()["candidates"]
    (alice,) = members(user_factory, admin_api, project, "alice")
    take_next(alice, project)
    annotation = submit(
        alice, project, detail["id"], ranking={str(candidates[0]["id"]): 2, str(candidates[1]["id"]): 1},
    ).json()
    _decide(admin_api, project, annotation["id"], "accept")

    rows = _snapshot_rows(admin_api, project, "preference")

    assert rows[0]["chosen"] == [{"role": "assistant", "content": "imported good"}]
    assert rows[0]["rejected"] == [{"role": "assistant", "content": "imported bad"}]


def test_own_annotation_needs_another_reviewer(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 2)
    (carol, dave) = members(user_factory, admin_api, project, "carol", "dave", role="reviewer")
    take_next(carol, project)
    own = submit(carol, project, ids[0], response="Carol's own answer").json()

    listed = _pending(carol, project)
    decided = _decide(carol, project, own["id"], "accept")
    by_other = _decide(dave, project, own["id"], "accept")

    assert listed["total"] == 0
    assert listed["items"] == []
    assert decided.status_code == 403
    assert "is your own" in decided.json()["error"]["message"]
    assert "self-review" in decided.json()["error"]["message"]
    assert _pending(dave, project)["total"] == 0
    assert by_other.status_code == 201, by_other.text
    assert item_row(ids[0]).status == "accepted"


def test_self_review_setting_allows_own(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 1)
    (carol,) = members(user_factory, admin_api, project, "carol", role="reviewer")
    take_next(carol, project)
    own = submit(carol, project, ids[0]).json()

    set_project(admin_api, project, self_review=True)
    stored = admin_api.get(f"/api/v1/projects/{project}").json()
    listed = _pending(carol, project)
    decided = _decide(carol, project, own["id"], "reject", comment="too short")

    assert stored["self_review"] is True
    assert listed["total"] == 1
    assert listed["items"][0]["annotation"]["id"] == own["id"]
    assert decided.status_code == 201, decided.text
    assert item_row(ids[0]).status == "new"


def test_new_project_forbids_self_review(admin_api):
    created = admin_api.post("/api/v1/projects", json={"slug": "fresh", "name": "Fresh"})
    allowed = admin_api.post("/api/v1/projects", json={"slug": "solo", "name": "Solo", "self_review": True})

    assert created.status_code == 201, created.text
    assert created.json()["self_review"] is False
    assert allowed.status_code == 201, allowed.text
    assert allowed.json()["self_review"] is True
