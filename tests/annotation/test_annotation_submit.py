"""Submissions through the REST API: idempotent retries, versions, history, validation."""

from annotating import (
    COMPLETE_RATINGS,
    add_candidate,
    import_prompts,
    item_row,
    members,
    set_project,
    submit,
    take_next,
)
from sqlalchemy import func, select


def _annotation_count() -> int:
    from app.annotation.models import Annotation
    from app.db import unit_of_work

    with unit_of_work(write=False) as db:
        return db.scalar(select(func.count()).select_from(Annotation))


def _history(annotation_id: int) -> list[tuple[int, int | None, str]]:
    from app.annotation.models import AnnotationHistory
    from app.db import unit_of_work

    with unit_of_work(write=False) as db:
        return [tuple(row) for row in db.execute(
            select(AnnotationHistory.version, AnnotationHistory.user_id, AnnotationHistory.status)
            .where(AnnotationHistory.annotation_id == annotation_id).order_by(AnnotationHistory.version)
        ).all()]


def test_double_submit_stores_one(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 2)
    (alice,) = members(user_factory, admin_api, project, "alice")
    take_next(alice, project)

    first = submit(alice, project, ids[0], token="same-token-123")
    second = submit(alice, project, ids[0], token="same-token-123")

    assert first.status_code == 200
    assert second.status_code == 200
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["version"] == first.json()["version"] == 1
    assert _annotation_count() == 1
    assert item_row(ids[0]).annotation_count == 1


def test_stale_version_is_rejected(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 1)
    (alice,) = members(user_factory, admin_api, project, "alice")
    take_next(alice, project)
    url = f"/api/v1/projects/{project}/items/{ids[0]}/annotation/draft"
    tab_one = alice.put(url, json={"response": "tab one", "version": 0})
    assert tab_one.status_code == 200

    tab_two = alice.put(url, json={"response": "tab two", "version": 0})
    late_submit = submit(alice, project, ids[0], version=0)

    assert tab_two.status_code == 409
    assert tab_two.json()["error"]["current_version"] == 1
    assert "reload" in tab_two.json()["error"]["message"]
    assert late_submit.status_code == 409
    stored = alice.get(f"/api/v1/projects/{project}/items/{ids[0]}/annotation").json()
    assert stored["response"] == "tab one"
    assert stored["version"] == 1


def test_history_records_every_version(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 1)
    (alice,) = members(user_factory, admin_api, project, "alice")
    take_next(alice, project)
    draft = alice.put(
        f"/api/v1/projects/{project}/items/{ids[0]}/annotation/draft", json={"response": "draft", "version": 0}
    ).json()
    submitted = submit(alice, project, ids[0], version=1, response="first").json()
    changed = submit(alice, project, ids[0], version=2, response="second")
    assert changed.status_code == 200, changed.text

    history = alice.get(f"/api/v1/projects/{project}/items/{ids[0]}/annotation/history").json()

    assert [entry["version"] for entry in history] == [1, 2, 3]
    assert [entry["status"] for entry in history] == ["draft", "submitted", "submitted"]
    assert [entry["data"]["response"] for entry in history] == ["draft", "first", "second"]
    assert {entry["username"] for entry in history} == {"alice"}
    assert all(entry["created_at"] for entry in history)
    stored = _history(draft["id"])
    assert [version for version, _, _ in stored] == [1, 2, 3]
    assert changed.json()["submitted_at"] == submitted["submitted_at"]
    assert item_row(ids[0]).annotation_count == 1


def test_required_questions_are_enforced(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 1)
    (alice,) = members(user_factory, admin_api, project, "alice")
    take_next(alice, project)

    missing = submit(alice, project, ids[0], response="  ", ratings={"helpfulness": 3})

    assert missing.status_code == 422
    problems = missing.json()["error"]["problems"]
    assert any(problem.startswith("response:") for problem in problems)
    assert any("correctness" in problem and "harmlessness" in problem for problem in problems)
    assert item_row(ids[0]).annotation_count == 0


def test_flag_excuses_required_questions(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 1)
    (alice,) = members(user_factory, admin_api, project, "alice")
    take_next(alice, project)

    flagged = submit(alice, project, ids[0], response=None, ratings={}, flags=["unanswerable"], note="no context")

    assert flagged.status_code == 200, flagged.text
    assert flagged.json()["flags"] == ["unanswerable"]
    assert flagged.json()["note"] == "no context"


def test_invalid_values_are_rejected(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 1)
    (alice,) = members(user_factory, admin_api, project, "alice")
    take_next(alice, project)

    bad = submit(
        alice, project, ids[0], ratings={**COMPLETE_RATINGS, "helpfulness": 9, "style": 3},
        flags=["nonsense"], ranking={"999": 1},
    )

    assert bad.status_code == 422
    message = bad.json()["error"]["message"]
    assert "invalid score 9 for 'helpfulness'" in message
    assert "unknown rubric criterion 'style'" in message
    assert "unknown flag 'nonsense'" in message
    assert "candidate 999 is not ranked" in message


def test_ranking_with_ties_and_choice(admin_api, user_factory, project):
    set_project(admin_api, project, settings={"pairwise": {"enabled": True}})
    ids = import_prompts(admin_api, project, 1)
    imported = admin_api.get(f"/api/v1/projects/{project}/items/{ids[0]}").json()["candidates"][0]["id"]
    second = add_candidate(ids[0], "Second draft")
    third = add_candidate(ids[0], "Third draft")
    (alice,) = members(user_factory, admin_api, project, "alice")
    offered = take_next(alice, project)
    assert len(offered["item"]["candidates"]) == 3
    pair = _shown_pair(project, ids[0], offered)

    result = submit(
        alice, project, ids[0], ranking={str(imported): 1, str(second): 1, str(third): 3},
        choice={"preferred": pair[1], "other": pair[0]},
    )

    assert result.status_code == 200, result.text
    assert result.json()["ranking"] == {str(imported): 1, str(second): 1, str(third): 3}
    assert result.json()["choice"] == {"preferred": pair[1], "other": pair[0]}


def _shown_pair(project: str, item_id: int, offered: dict) -> tuple[int, int]:
    from app.annotation.task import pairwise_pair
    from app.auth.models import User
    from app.db import unit_of_work
    from app.items.models import Candidate

    with unit_of_work(write=False) as db:
        user_id = db.scalar(select(User.id).where(User.username == "alice"))
        candidates = list(db.scalars(select(Candidate).where(Candidate.item_id == item_id)))
        left, right = pairwise_pair(item_id, user_id, candidates)
        return left.id, right.id


def test_pairwise_order_is_stable_per_user():
    from types import SimpleNamespace

    from app.annotation.task import pairwise_pair

    candidates = [SimpleNamespace(id=i) for i in (11, 12)]
    orders = {tuple(c.id for c in pairwise_pair(7, user_id, candidates)) for user_id in range(1, 40)}

    assert pairwise_pair(7, 3, candidates) == pairwise_pair(7, 3, list(reversed(candidates)))
    assert orders == {(11, 12), (12, 11)}


def test_choice_must_name_the_shown_pair(admin_api, user_factory, project):
    set_project(admin_api, project, settings={"pairwise": {"enabled": True}, "ranking": {"enabled": False}})
    ids = import_prompts(admin_api, project, 1)
    add_candidate(ids[0], "Model draft")
    (alice,) = members(user_factory, admin_api, project, "alice")
    take_next(alice, project)

    missing = submit(alice, project, ids[0])
    wrong = submit(alice, project, ids[0], choice={"preferred": 1, "other": 1})

    assert missing.status_code == 422
    assert "choice: pick the better" in missing.json()["error"]["message"]
    assert wrong.status_code == 422
    assert "invalid choice" in wrong.json()["error"]["message"]


def test_submit_without_lease_is_refused(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 2)
    (alice,) = members(user_factory, admin_api, project, "alice")
    take_next(alice, project)

    unleased = submit(alice, project, ids[1])

    assert unleased.status_code == 404
    assert "not leased to you" in unleased.json()["error"]["message"]


def test_text_survives_byte_for_byte(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 1)
    (alice,) = members(user_factory, admin_api, project, "alice")
    take_next(alice, project)
    text = "中文回答 🧪 مرحبا\r\n\"quotes\" e\u0301 <b>bold</b>\n"

    stored = submit(alice, project, ids[0], response=text, note="备注 🙂").json()

    assert stored["response"] == text
    assert stored["note"] == "备注 🙂"


def test_review_not_required_accepts_complete_items(admin_api, user_factory, project):
    set_project(admin_api, project, review_required=False, annotations_per_item=2)
    ids = import_prompts(admin_api, project, 1)
    alice, bob = members(user_factory, admin_api, project, "alice", "bob")
    take_next(alice, project)
    take_next(bob, project)

    assert submit(alice, project, ids[0]).json()["status"] == "submitted"
    assert item_row(ids[0]).status == "new"
    assert submit(bob, project, ids[0]).status_code == 200

    assert item_row(ids[0]).status == "accepted"
    assert alice.get(f"/api/v1/projects/{project}/items/{ids[0]}/annotation").json()["status"] == "accepted"


def test_lowering_overlap_recounts_items(admin_api, user_factory, project):
    set_project(admin_api, project, annotations_per_item=2)
    ids = import_prompts(admin_api, project, 1)
    (alice,) = members(user_factory, admin_api, project, "alice")
    take_next(alice, project)
    submit(alice, project, ids[0])
    assert item_row(ids[0]).status == "new"

    set_project(admin_api, project, annotations_per_item=1)

    assert item_row(ids[0]).status == "annotated"
