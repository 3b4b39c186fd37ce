import re

from support import csrf_of, import_jsonl, login, make_user

XSS_PROMPT = "<img src=x onerror=\"document.title='x'\">Summarise this"
XSS_RESPONSE = "<script>window.y=1</script>ok"


def _member(admin_api, project, username, role="annotator"):
    make_user(username)
    admin_api.put(f"/api/v1/projects/{project}/members/{username}", json={"role": role})


def test_pages_need_login(client, db_ready):
    response = client.get("/projects/demo/items", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fprojects%2Fdemo%2Fitems"


def test_project_list_shows_counts(client, admin_api, project):
    import_jsonl(admin_api, project, [{"prompt": f"q{n}", "completion": "a"} for n in range(3)])
    _member(admin_api, project, "ann")
    login(client, "ann")
    page = client.get("/")
    assert page.status_code == 200
    assert "Demo" in page.text
    assert re.search(r"<td>3</td><td>3</td>", page.text)


def test_xss_escaped_on_every_page(client, admin_api, project):
    import_jsonl(admin_api, project, [{"prompt": XSS_PROMPT, "completion": XSS_RESPONSE}])
    item_id = admin_api.get(f"/api/v1/projects/{project}/items").json()["items"][0]["id"]
    admin_api.post(f"/api/v1/projects/{project}/snapshots", json={"include_unreviewed": True})
    _member(admin_api, project, "ann")
    login(client, "ann")
    for url in (f"/projects/{project}", f"/projects/{project}/items", f"/projects/{project}/items/{item_id}",
                f"/projects/{project}/snapshots", f"/projects/{project}/items?q=Summarise"):
        html = client.get(url).text
        assert "<script>window.y=1</script>" not in html, url
        assert "<img src=x onerror" not in html, url
    detail = client.get(f"/projects/{project}/items/{item_id}").text
    assert "&lt;img src=x onerror=&#34;document.title=&#39;x&#39;&#34;&gt;Summarise this" in detail
    assert "&lt;script&gt;window.y=1&lt;/script&gt;ok" in detail


def test_guidelines_markdown_rendered_safely(client, admin_api, project):
    admin_api.patch(f"/api/v1/projects/{project}", json={
        "guidelines": "**Bold** <script>alert(1)</script> [x](javascript:alert(1))"})
    _member(admin_api, project, "ann")
    login(client, "ann")
    html = client.get(f"/projects/{project}").text
    assert "<strong>Bold</strong>" in html
    assert "<script>alert(1)</script>" not in html
    assert 'href="javascript:' not in html


def test_items_page_htmx_returns_fragment(client, admin_api, project):
    import_jsonl(admin_api, project, [{"prompt": "hello there", "completion": "a"}])
    _member(admin_api, project, "ann")
    login(client, "ann")
    fragment = client.get(f"/projects/{project}/items?q=hello", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text
    assert "hello there" in fragment.text
    assert "HX-Request" in fragment.headers["vary"]


def test_items_page_paginates(client, admin_api, project):
    import_jsonl(admin_api, project, [{"prompt": f"row {n}", "completion": "a"} for n in range(7)])
    _member(admin_api, project, "ann")
    login(client, "ann")
    html = client.get(f"/projects/{project}/items?page_size=5&page=2").text
    assert "Page 2 of 2 · 7 in all" in html


def test_other_project_page_is_404(client, admin_api, project):
    admin_api.post("/api/v1/projects", json={"slug": "secret", "name": "Secret project"})
    import_jsonl(admin_api, "secret", [{"prompt": "classified prompt", "completion": "x"}])
    secret_item = admin_api.get("/api/v1/projects/secret/items").json()["items"][0]["id"]
    _member(admin_api, project, "ann")
    login(client, "ann")
    for url in ("/projects/secret", "/projects/secret/items", f"/projects/secret/items/{secret_item}",
                f"/projects/{project}/items/{secret_item}", "/projects/secret/snapshots"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "classified" not in response.text
    assert "Secret project" not in client.get("/").text


def test_snapshot_page_lists_downloads(client, admin_api, project):
    import_jsonl(admin_api, project, [{"prompt": "q", "completion": "a"}])
    login(client, "admin", password="correct-horse-battery")
    token = csrf_of(client.get(f"/projects/{project}/snapshots").text)
    response = client.post(
        f"/projects/{project}/snapshots", data={"csrf_token": token, "include_unreviewed": "1"}, follow_redirects=True,
    )
    assert response.status_code == 200
    assert f"/api/v1/projects/{project}/snapshots/1/files/train.messages.jsonl" in response.text
    download = client.get(f"/api/v1/projects/{project}/snapshots/1/files/train.messages.jsonl")
    assert download.status_code == 200
    assert b'"content":"q"' in download.content


def test_import_form_shows_counts(client, admin_api, project):
    login(client, "admin", password="correct-horse-battery")
    token = csrf_of(client.get(f"/projects/{project}").text)
    content = b'{"prompt": "a", "completion": "b"}\n{"prompt": 7, "completion": "c"}\n'
    response = client.post(
        f"/projects/{project}/import", data={"csrf_token": token},
        files={"file": ("rows.jsonl", content, "application/octet-stream")},
    )
    assert response.status_code == 200, response.text
    assert "Created: 1" in response.text
    assert "Rejected: 1" in response.text


def test_content_security_policy_header(client, db_ready):
    response = client.get("/login")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "'unsafe-inline'" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in response.text
    assert " style=" not in response.text


def test_chinese_from_accept_language(client, admin_api, project):
    _member(admin_api, project, "ann")
    page = client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert "登录" in page.text
    assert '<html lang="zh-CN">' in page.text
    login(client, "ann")
    assert "项目" in client.get("/", headers={"Accept-Language": "zh-CN"}).text
    assert "Projects" in client.get("/", headers={"Accept-Language": "en-US"}).text


def test_user_setting_beats_accept_language(client, admin_api, project):
    _member(admin_api, project, "ann")
    login(client, "ann")
    token = csrf_of(client.get("/account").text)
    client.post("/account/locale", data={"csrf_token": token, "locale": "zh-CN"})
    html = client.get("/", headers={"Accept-Language": "en-US"}).text
    assert "项目" in html
    assert '<html lang="zh-CN">' in html
