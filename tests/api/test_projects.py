def test_create_list_show(admin_api):
    created = admin_api.post("/api/v1/projects", json={
        "slug": "support-zh", "name": "客服对话", "guidelines": "# Rules\n\nBe kind.", "annotations_per_item": 2,
    })
    assert created.status_code == 201, created.text
    listed = admin_api.get("/api/v1/projects").json()
    assert listed["total"] == 1
    assert listed["items"][0]["name"] == "客服对话"
    shown = admin_api.get("/api/v1/projects/support-zh").json()
    assert shown["annotations_per_item"] == 2
    assert shown["guidelines"] == "# Rules\n\nBe kind."


def test_invalid_slug_named(admin_api):
    response = admin_api.post("/api/v1/projects", json={"slug": "Bad Slug!", "name": "x"})
    assert response.status_code == 422
    assert "Bad Slug!" in response.json()["error"]["message"]


def test_duplicate_slug_conflict(admin_api, project):
    response = admin_api.post("/api/v1/projects", json={"slug": project, "name": "again"})
    assert response.status_code == 409


def test_annotations_per_item_range(admin_api):
    response = admin_api.post("/api/v1/projects", json={"slug": "p", "name": "p", "annotations_per_item": 0})
    assert response.status_code == 422
    assert "annotations_per_item" in response.json()["error"]["message"]


def test_update_guidelines(admin_api, project):
    response = admin_api.patch(f"/api/v1/projects/{project}", json={"guidelines": "新的指南"})
    assert response.status_code == 200
    assert admin_api.get(f"/api/v1/projects/{project}").json()["guidelines"] == "新的指南"


def test_only_admin_creates_projects(user_factory):
    reviewer = user_factory("rev", role="reviewer")
    assert reviewer.post("/api/v1/projects", json={"slug": "r", "name": "r"}).status_code == 403


def test_members_and_roles(admin_api, user_factory, project):
    user_factory("ann")
    response = admin_api.put(f"/api/v1/projects/{project}/members/ann", json={"role": "annotator"})
    assert response.status_code == 200
    members = {m["username"]: m["role"] for m in admin_api.get(f"/api/v1/projects/{project}/members").json()}
    assert members == {"admin": "manager", "ann": "annotator"}
    bad = admin_api.put(f"/api/v1/projects/{project}/members/ann", json={"role": "boss"})
    assert bad.status_code == 422
    assert admin_api.delete(f"/api/v1/projects/{project}/members/ann").status_code == 204


def test_project_list_paginates(admin_api):
    for n in range(3):
        admin_api.post("/api/v1/projects", json={"slug": f"p{n}", "name": f"P{n}"})
    page = admin_api.get("/api/v1/projects", params={"page_size": 2, "page": 2}).json()
    assert page["total"] == 3
    assert [p["slug"] for p in page["items"]] == ["p2"]
