from support import import_jsonl


def _seed(api, project, count=12):
    rows = [{"prompt": f"Question number {n:02d}", "completion": f"Answer {n}"} for n in range(count)]
    assert import_jsonl(api, project, rows).json()["created"] == count


def test_list_paginates_with_total(admin_api, project):
    _seed(admin_api, project)
    first = admin_api.get(f"/api/v1/projects/{project}/items", params={"page_size": 5}).json()
    assert first["total"] == 12
    assert first["pages"] == 3
    assert len(first["items"]) == 5
    third = admin_api.get(f"/api/v1/projects/{project}/items", params={"page_size": 5, "page": 3}).json()
    assert len(third["items"]) == 2
    ids = [i["id"] for i in first["items"]]
    assert ids == sorted(ids)


def test_list_pages_cover_every_item_once(admin_api, project):
    _seed(admin_api, project)
    seen = []
    for page in (1, 2, 3):
        seen += [i["id"] for i in admin_api.get(
            f"/api/v1/projects/{project}/items", params={"page_size": 5, "page": page}).json()["items"]]
    assert len(seen) == 12
    assert len(set(seen)) == 12


def test_invalid_page_size_named(admin_api, project):
    response = admin_api.get(f"/api/v1/projects/{project}/items", params={"page_size": 100000})
    assert response.status_code == 422
    assert "page_size" in response.json()["error"]["message"]


def test_filter_by_status(admin_api, project):
    _seed(admin_api, project, 3)
    assert admin_api.get(f"/api/v1/projects/{project}/items", params={"status": "new"}).json()["total"] == 3
    assert admin_api.get(f"/api/v1/projects/{project}/items", params={"status": "accepted"}).json()["total"] == 0
    bad = admin_api.get(f"/api/v1/projects/{project}/items", params={"status": "bogus"})
    assert bad.status_code == 422
    assert "bogus" in bad.json()["error"]["message"]


def test_text_search(admin_api, project):
    _seed(admin_api, project)
    import_jsonl(admin_api, project, [{"prompt": "100% 中文 search_term", "completion": "x"}])
    found = admin_api.get(f"/api/v1/projects/{project}/items", params={"q": "number 1"}).json()
    assert found["total"] == 2
    assert admin_api.get(f"/api/v1/projects/{project}/items", params={"q": "中文"}).json()["total"] == 1
    assert admin_api.get(f"/api/v1/projects/{project}/items", params={"q": "100%"}).json()["total"] == 1
    assert admin_api.get(f"/api/v1/projects/{project}/items", params={"q": "_term"}).json()["total"] == 1


def test_item_detail_has_candidates(admin_api, project):
    import_jsonl(admin_api, project, [{"prompt": "p", "chosen": "good", "rejected": "bad"}])
    item = admin_api.get(f"/api/v1/projects/{project}/items").json()["items"][0]
    detail = admin_api.get(f"/api/v1/projects/{project}/items/{item['id']}").json()
    labels = {c["label"]: c["text"] for c in detail["candidates"]}
    assert labels == {"chosen": "good", "rejected": "bad"}


def test_other_project_item_is_404(admin_api, user_factory, project):
    admin_api.post("/api/v1/projects", json={"slug": "secret", "name": "Secret"})
    import_jsonl(admin_api, "secret", [{"prompt": "classified", "completion": "x"}])
    secret_item = admin_api.get("/api/v1/projects/secret/items").json()["items"][0]["id"]

    annotator = user_factory("ann")
    admin_api.put(f"/api/v1/projects/{project}/members/ann", json={"role": "annotator"})
    via_own_project = annotator.get(f"/api/v1/projects/{project}/items/{secret_item}")
    assert via_own_project.status_code == 404
    assert "classified" not in via_own_project.text
    via_secret = annotator.get(f"/api/v1/projects/secret/items/{secret_item}")
    assert via_secret.status_code == 404
    assert "classified" not in via_secret.text


def test_non_member_sees_no_projects(admin_api, user_factory, project):
    outsider = user_factory("outsider")
    assert outsider.get("/api/v1/projects").json()["total"] == 0
    assert outsider.get(f"/api/v1/projects/{project}").status_code == 404
    assert outsider.get(f"/api/v1/projects/{project}/items").status_code == 404
