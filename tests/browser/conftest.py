"""A real sftdesk server (uvicorn subprocess on 127.0.0.1, temporary SQLite data directory) and Chromium."""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
from browser_helpers import PASSWORD, log_in  # noqa: F401  (fixtures use PASSWORD)
USERS = {"admin": ("admin", None), "alice": ("annotator", None), "bob": ("annotator", None),
         "carol": ("reviewer", None), "lin": ("annotator", "zh-CN")}

SETUP_SCRIPT = """
import json, sys
from app.migrate import upgrade_to_head
from app.db import unit_of_work
from app.auth import service
upgrade_to_head()
tokens = {}
with unit_of_work() as db:
    for name, (role, locale) in json.loads(sys.argv[1]).items():
        user = service.create_user(db, username=name, password=sys.argv[2], role=role, locale=locale)
        tokens[name] = service.create_api_token(db, user, "browser tests").secret
print(json.dumps(tokens))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """The running server: its base URL and REST helpers that act as each user."""

    def __init__(self, base_url: str, tokens: dict[str, str]) -> None:
        self.base_url = base_url
        self.tokens = tokens

    def api(self, username: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {self.tokens[username]}"}, timeout=30,
        )

    def new_project(self, rows: list[dict], *, members=("alice", "bob", "carol", "lin"), **fields) -> str:
        slug = f"p-{secrets.token_hex(4)}"
        with self.api("admin") as admin:
            created = admin.post("/api/v1/projects", json={"slug": slug, "name": f"Project {slug}"} | fields)
            assert created.status_code == 201, created.text
            body = b"".join(json.dumps(row, ensure_ascii=False).encode() + b"\n" for row in rows)
            imported = admin.post(
                f"/api/v1/projects/{slug}/items", content=body, headers={"Content-Type": "application/jsonl"},
            )
            assert imported.status_code == 201, imported.text
            for name in members:
                role = "reviewer" if USERS[name][0] == "reviewer" else "annotator"
                assert admin.put(f"/api/v1/projects/{slug}/members/{name}", json={"role": role}).status_code == 200
        return slug


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"Chromium not found at {CHROMIUM}; CI must run the browser tests")
        pytest.skip(f"Chromium not found at {CHROMIUM}: install the Debian package 'chromium' (make browser)")
    return CHROMIUM


@pytest.fixture(scope="session")
def server(tmp_path_factory, chromium_path):
    data_dir = tmp_path_factory.mktemp("browser-data")
    env = {key: value for key, value in os.environ.items() if not key.startswith("SFTDESK_")}
    env.update(SFTDESK_DATA_DIR=str(data_dir), SFTDESK_ENVIRONMENT="test")
    setup = subprocess.run(
        [sys.executable, "-c", SETUP_SCRIPT, json.dumps(USERS), PASSWORD],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert setup.returncode == 0, setup.stderr
    tokens = json.loads(setup.stdout.strip().splitlines()[-1])

    port = _free_port()
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_path.read_text(errors="replace")
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not answer /healthz within 30 s"
            time.sleep(0.1)
        yield Server(base_url, tokens)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(data_dir / "snapshots", ignore_errors=True)


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def console_errors():
    """Collect console errors and page errors of every page a test opens; CSP reports land here."""
    errors: list[str] = []
    yield errors
    csp = [error for error in errors if "Content Security Policy" in error or "Content-Security-Policy" in error]
    assert csp == [], csp


@pytest.fixture
def open_page(browser, server, console_errors):
    """Return a function that opens a logged-in page for a user in a context of its own."""
    contexts = []

    def open_as(username: str, *, locale: str = "en-US"):
        context = browser.new_context(base_url=server.base_url, locale=locale, viewport={"width": 1400, "height": 1000})
        contexts.append(context)
        page = context.new_page()
        page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
        page.on("pageerror", lambda error: console_errors.append(str(error)))
        log_in(page, username)
        return page

    yield open_as
    for context in contexts:
        context.close()


