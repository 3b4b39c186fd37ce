import re

from sqlalchemy import select

from support import csrf_of, login, make_user


def _stored_user(username):
    from app.auth.models import User
    from app.db import unit_of_work

    with unit_of_work(write=False) as db:
        return db.scalar(select(User).where(User.username == username))


def test_password_stored_as_argon2(db_ready):
    make_user("alice", password="s3cret-password")
    user = _stored_user("alice")
    assert user.password_hash.startswith("$argon2id$")
    assert "s3cret-password" not in user.password_hash


def test_api_token_stored_hashed_and_shown_once(client, admin_api):
    from app.auth.models import ApiToken
    from app.db import unit_of_work

    response = admin_api.post("/api/v1/tokens", json={"name": "ingest script"})
    assert response.status_code == 201
    secret = response.json()["token"]
    assert secret.startswith("sft_")

    listed = admin_api.get("/api/v1/tokens").json()
    assert all("token" not in token for token in listed)
    with unit_of_work(write=False) as db:
        hashes = list(db.scalars(select(ApiToken.token_hash)))
    assert secret not in hashes
    assert all(len(h) == 64 for h in hashes)

    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200
    assert me.json()["username"] == "admin"


def test_revoked_token_rejected(client, admin_api):
    issued = admin_api.post("/api/v1/tokens", json={"name": "short-lived"}).json()
    headers = {"Authorization": f"Bearer {issued['token']}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200

    revoked = admin_api.delete(f"/api/v1/tokens/{issued['id']}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None

    response = client.get("/api/v1/me", headers=headers)
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_anonymous_api_request_rejected(client):
    response = client.get("/api/v1/projects")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_login_sets_httponly_samesite_cookie(client, db_ready):
    make_user("bob")
    page = client.get("/login")
    token = csrf_of(page.text)
    response = client.post(
        "/login", data={"username": "bob", "password": "correct-horse-battery", "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "sftdesk_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie


def test_login_wrong_password_shows_error(client, db_ready):
    make_user("bob")
    page = client.get("/login")
    response = client.post(
        "/login", data={"username": "bob", "password": "wrong-password", "csrf_token": csrf_of(page.text)},
    )
    assert response.status_code == 401
    assert "Invalid username or password." in response.text
    assert "sftdesk_session" not in response.headers.get("set-cookie", "")


def test_login_without_csrf_token_rejected(client, db_ready):
    make_user("bob")
    client.get("/login")
    response = client.post("/login", data={"username": "bob", "password": "correct-horse-battery"})
    assert response.status_code == 403


def test_form_post_without_csrf_rejected(client, db_ready):
    make_user("carol", role="admin")
    login(client, "carol")
    response = client.post("/projects", data={"name": "X", "slug": "x"})
    assert response.status_code == 403
    assert "CSRF" in response.text


def test_form_post_with_csrf_accepted(client, db_ready):
    make_user("carol", role="admin")
    login(client, "carol")
    token = csrf_of(client.get("/").text)
    response = client.post("/projects", data={"name": "X", "slug": "x", "csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/projects/x"


def test_logout_ends_session(client, db_ready):
    make_user("dave")
    login(client, "dave")
    token = csrf_of(client.get("/account").text)
    client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


def test_login_next_only_same_site(client, db_ready):
    make_user("erin")
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"username": "erin", "password": "correct-horse-battery", "csrf_token": csrf_of(page.text),
              "next": "//evil.example/steal"},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/"


def test_account_page_creates_token_once(client, db_ready):
    make_user("fay")
    login(client, "fay")
    token = csrf_of(client.get("/account").text)
    response = client.post("/account/tokens", data={"name": "laptop", "csrf_token": token})
    shown = re.search(r'<code class="token">(sft_[^<]+)</code>', response.text)
    assert shown is not None
    again = client.get("/account")
    assert shown.group(1) not in again.text


def test_non_admin_cannot_create_users(user_factory):
    annotator = user_factory("gina")
    response = annotator.post("/api/v1/users", json={"username": "x1", "password": "long-enough-pw"})
    assert response.status_code == 403


def test_create_user_rejects_short_password(admin_api):
    response = admin_api.post("/api/v1/users", json={"username": "hank", "password": "short"})
    assert response.status_code == 422
    assert "at least 8 characters" in response.json()["error"]["message"]
