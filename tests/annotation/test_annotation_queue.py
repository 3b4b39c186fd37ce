"""The assignment queue through the REST API: overlap, leases, skips, empty-queue reasons."""

from annotating import (
    annotations_by_item,
    expire_leases,
    import_prompts,
    item_row,
    members,
    set_priority,
    set_project,
    submit,
    take_next,
    work_through,
)


def test_two_annotators_one_each_cover_every_item_once(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 10)
    alice, bob = members(user_factory, admin_api, project, "alice", "bob")

    received = []
    done = set()
    while len(done) < 2:
        for api in (alice, bob):
            if api.username in done:
                continue
            offered = work_through(api, project)
            if offered["item"] is None:
                assert offered["reason"] == "waiting_review"
                done.add(api.username)
            else:
                received.append(offered["item"]["id"])

    assert sorted(received) == ids
    stored = annotations_by_item(project)
    assert sorted(stored) == ids
    assert all(len(rows) == 1 for rows in stored.values())


def test_overlap_two_with_three_annotators(admin_api, user_factory, project):
    set_project(admin_api, project, annotations_per_item=2)
    ids = import_prompts(admin_api, project, 10)
    apis = members(user_factory, admin_api, project, "alice", "bob", "carol")

    finished = set()
    while len(finished) < 3:
        for api in apis:
            if api.username not in finished and work_through(api, project)["item"] is None:
                finished.add(api.username)

    stored = annotations_by_item(project)
    assert sorted(stored) == ids
    for item_id, rows in stored.items():
        assert len(rows) == 2, item_id
        assert len({user_id for user_id, _ in rows}) == 2, item_id
        assert item_row(item_id).status == "annotated"
        assert item_row(item_id).annotation_count == 2


def test_submitted_item_never_offered_again(admin_api, user_factory, project):
    set_project(admin_api, project, annotations_per_item=3)
    ids = import_prompts(admin_api, project, 3)
    alice, bob = members(user_factory, admin_api, project, "alice", "bob")

    first = take_next(alice, project)["item"]["id"]
    assert submit(alice, project, first).status_code == 200
    take_next(bob, project)
    expire_leases()

    offered = []
    while (item := take_next(alice, project)["item"]) is not None:
        offered.append(item["id"])
        assert submit(alice, project, item["id"]).status_code == 200
        expire_leases()

    assert first not in offered
    assert sorted(offered + [first]) == ids


def test_leased_remainder_reports_in_progress(admin_api, user_factory, project):
    import_prompts(admin_api, project, 2)
    alice, bob, carol = members(user_factory, admin_api, project, "alice", "bob", "carol")
    take_next(alice, project)
    take_next(bob, project)

    empty = take_next(carol, project)

    assert empty["item"] is None
    assert empty["reason"] == "in_progress"
    assert "the remaining items are in progress with other annotators" in empty["message"]
    assert "All done" not in empty["message"]


def test_expired_lease_returns_item(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 1)
    alice, bob = members(user_factory, admin_api, project, "alice", "bob")
    assert take_next(alice, project)["item"]["id"] == ids[0]
    assert take_next(bob, project)["reason"] == "in_progress"

    expire_leases()

    assert take_next(bob, project)["item"]["id"] == ids[0]


def test_expired_lease_loser_cannot_submit(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 1)
    alice, bob = members(user_factory, admin_api, project, "alice", "bob")
    take_next(alice, project)
    expire_leases()
    take_next(bob, project)

    late = submit(alice, project, ids[0])

    assert late.status_code == 409
    assert "expired" in late.json()["error"]["message"]
    assert submit(bob, project, ids[0]).status_code == 200


def test_expired_lease_still_submits_when_item_has_room(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 1)
    (alice,) = members(user_factory, admin_api, project, "alice")
    take_next(alice, project)
    expire_leases()

    assert submit(alice, project, ids[0]).status_code == 200
    assert item_row(ids[0]).status == "annotated"


def test_next_returns_held_item(admin_api, user_factory, project):
    import_prompts(admin_api, project, 3)
    (alice,) = members(user_factory, admin_api, project, "alice")

    first = take_next(alice, project)
    again = take_next(alice, project)

    assert again["item"]["id"] == first["item"]["id"]
    assert again["lease"]["resumed"] is True


def test_skipped_items_come_back_last(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 3)
    (alice,) = members(user_factory, admin_api, project, "alice")
    first = take_next(alice, project)["item"]["id"]
    assert alice.post(f"/api/v1/projects/{project}/items/{first}/skip").status_code == 204

    order = []
    while (item := take_next(alice, project)["item"]) is not None:
        order.append(item["id"])
        assert submit(alice, project, item["id"]).status_code == 200

    assert first == ids[0]
    assert order == [ids[1], ids[2], ids[0]]


def test_skipped_item_goes_to_others_first(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 1)
    alice, bob = members(user_factory, admin_api, project, "alice", "bob")
    take_next(alice, project)
    alice.post(f"/api/v1/projects/{project}/items/{ids[0]}/skip")

    assert take_next(bob, project)["item"]["id"] == ids[0]


def test_priority_orders_queue(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 3)
    set_priority(ids[2], 10)
    set_priority(ids[1], 5)
    (alice,) = members(user_factory, admin_api, project, "alice")

    order = [work_through(alice, project)["item"]["id"] for _ in ids]

    assert order == [ids[2], ids[1], ids[0]]


def test_lower_priority_when_the_top_level_is_taken(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 4)
    set_priority(ids[3], 10)
    set_priority(ids[1], 5)
    set_priority(ids[2], 5)
    alice, bob, carol = members(user_factory, admin_api, project, "alice", "bob", "carol")

    assert take_next(bob, project)["item"]["id"] == ids[3]
    assert take_next(alice, project)["item"]["id"] == ids[1]
    assert take_next(carol, project)["item"]["id"] == ids[2]


def test_waiting_review_then_all_done(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 1)
    alice, bob = members(user_factory, admin_api, project, "alice", "bob")
    work_through(alice, project)

    assert take_next(bob, project)["reason"] == "waiting_review"
    assert take_next(alice, project)["reason"] == "all_done"
    assert item_row(ids[0]).status == "annotated"


def test_next_item_includes_candidates_and_draft(admin_api, user_factory, project):
    ids = import_prompts(admin_api, project, 1)
    (alice,) = members(user_factory, admin_api, project, "alice")
    take_next(alice, project)
    draft = alice.put(
        f"/api/v1/projects/{project}/items/{ids[0]}/annotation/draft", json={"response": "half", "version": 0}
    )
    assert draft.status_code == 200, draft.text

    offered = take_next(alice, project)

    assert offered["item"]["candidates"][0]["text"] == "Answer number 0"
    assert offered["annotation"]["response"] == "half"
    assert offered["annotation"]["status"] == "draft"


def test_progress_counts(admin_api, user_factory, project):
    import_prompts(admin_api, project, 4)
    alice, bob = members(user_factory, admin_api, project, "alice", "bob")
    work_through(alice, project)
    work_through(bob, project)
    work_through(alice, project)

    progress = alice.get(f"/api/v1/projects/{project}/queue/progress").json()

    assert progress == {"project_done": 3, "project_total": 4, "mine": 2, "mine_remaining": 1}


def test_other_project_item_is_not_found(admin_api, user_factory, project):
    admin_api.post("/api/v1/projects", json={"slug": "other", "name": "Other"})
    other_ids = import_prompts(admin_api, "other", 1)
    import_prompts(admin_api, project, 1)
    (alice,) = members(user_factory, admin_api, project, "alice")
    take_next(alice, project)
    base = f"/api/v1/projects/{project}/items/{other_ids[0]}"

    assert submit(alice, project, other_ids[0]).status_code == 404
    assert alice.put(f"{base}/annotation/draft", json={"version": 0}).status_code == 404
    assert alice.post(f"{base}/skip").status_code == 404
    assert alice.get(f"{base}/annotation").status_code == 404
    assert alice.post("/api/v1/projects/other/queue/next").status_code == 404


def test_non_member_gets_not_found(admin_api, user_factory, project):
    import_prompts(admin_api, project, 1)
    stranger = user_factory("stranger")

    assert stranger.post(f"/api/v1/projects/{project}/queue/next").status_code == 404
