"""Helpers shared by the tests: REST and browser-form clients, users, imports."""

from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


class Api:
    """A REST client bound to one user's API token."""

    def __init__(self, client, token: str, username: str) -> None:
        self.client = client
        self.token = token
        self.username = username
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, url, **kwargs):
        return self.client.get(url, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)

    def post(self, url, **kwargs):
        return self.client.post(url, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)

    def patch(self, url, **kwargs):
        return self.client.patch(url, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)

    def put(self, url, **kwargs):
        return self.client.put(url, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)

    def delete(self, url, **kwargs):
        return self.client.delete(url, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)


def make_user(username: str, role: str = "annotator", password: str = "correct-horse-battery") -> tuple[int, str]:
    """Create a user with an API token; return (user id, token)."""
    from app.auth import service
    from app.db import unit_of_work

    with unit_of_work() as db:
        user = service.create_user(db, username=username, password=password, role=role)
        issued = service.create_api_token(db, user, "tests")
        return user.id, issued.secret


def import_jsonl(api: Api, project: str, rows: list, **params):
    import orjson

    body = b"".join(orjson.dumps(row) + b"\n" for row in rows)
    return api.post(
        f"/api/v1/projects/{project}/items", content=body,
        headers={"Content-Type": "application/jsonl"}, params=params,
    )


def login(client, username: str, password: str = "correct-horse-battery") -> None:
    """Log a browser-like client in through the login form."""
    import re

    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    response = client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token, "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


def csrf_of(html: str) -> str:
    import re

    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
