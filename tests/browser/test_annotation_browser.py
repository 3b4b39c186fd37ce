"""The annotation workspace and review in headless Chromium against a real server."""

import re
from pathlib import Path

import pytest
from browser_helpers import log_in

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ANSWERED = [
    {"instruction": f"Explain idea number {i} in one sentence.", "input": "", "output": f"Idea {i} is simple."}
    for i in range(3)
]


def _start(page, slug: str) -> None:
    page.goto(f"/projects/{slug}/annotate")
    _wait_for_focus(page, "button[autofocus]")
    _press(page, "Enter", re.compile(r"/annotate/items/\d+$"))


def _wait_for_focus(page, selector: str) -> None:
    """Wait until the browser has applied autofocus, which it does after the load event."""
    page.wait_for_function("selector => document.activeElement === document.querySelector(selector)", arg=selector)


def _press(page, key: str, url) -> None:
    """Press a key that navigates, and wait until the page has loaded a URL that matches."""
    with page.expect_navigation(url=url):
        page.keyboard.press(key)


def _item_id(page) -> int:
    return int(page.url.rsplit("/", 1)[1])


def _own_annotations(server, username: str, slug: str, item_ids) -> dict[int, dict]:
    found = {}
    with server.api(username) as api:
        for item_id in item_ids:
            response = api.get(f"/api/v1/projects/{slug}/items/{item_id}/annotation")
            if response.status_code == 200:
                found[item_id] = response.json()
    return found


def test_keyboard_only_annotation(server, open_page):
    slug = server.new_project(ANSWERED + [{"instruction": "Write a haiku about rain.", "input": "", "output": ""}])
    page = open_page("alice")

    _start(page, slug)
    seen = []
    for _ in range(3):
        seen.append(_item_id(page))
        if page.locator("#response").input_value() == "":
            _wait_for_focus(page, "#response")
            page.keyboard.type("Soft rain on the roof")
            page.keyboard.press("Escape")
        for key in "455":
            page.keyboard.press(key)
        _press(page, "Enter", lambda url, current=seen[-1]: not url.endswith(f"/items/{current}"))

    stored = _own_annotations(server, "alice", slug, seen)
    assert len(set(seen)) == 3
    assert sorted(stored) == sorted(seen)
    assert all(a["ratings"] == {"helpfulness": 4, "correctness": 5, "harmlessness": 5} for a in stored.values())
    assert all(a["status"] == "submitted" for a in stored.values())


def test_help_overlay_lists_keys(server, open_page):
    slug = server.new_project(ANSWERED[:1])
    page = open_page("alice")
    _start(page, slug)

    page.keyboard.press("?")

    help_dialog = page.locator("#shortcut-help")
    assert help_dialog.is_visible()
    assert "Skip this item" in help_dialog.inner_text()
    page.keyboard.press("Escape")
    assert not help_dialog.is_visible()


def test_edit_candidate_shows_diff(server, open_page):
    slug = server.new_project([{"instruction": "把下面的句子翻译成英文。", "input": "今天的会议推迟到下午三点。",
                                "output": "Today's meeting has been postponed to 3 p.m."}])
    page = open_page("alice")
    _start(page, slug)

    editor = page.locator("#response")
    editor.fill("Today's meeting has been moved to 3 p.m.")
    editor.dispatch_event("input")
    page.wait_for_selector("#diff ins")

    diff = page.locator("#diff .diff")
    assert diff.locator("del").first.inner_text() == "postponed"
    assert diff.locator("ins").first.inner_text() == "moved"
    assert "Draft saved" in page.locator("#draft-status").inner_text()


def test_rank_candidates(server, open_page):
    slug = server.new_project([{"prompt": "How should I store fresh basil?",
                                "chosen": "In a glass of water on the counter.", "rejected": "In the fridge."}])
    page = open_page("alice")
    _start(page, slug)
    item_id = _item_id(page)
    rows = page.locator("[data-numeric]")
    assert rows.count() == 5

    for key in "21" + "345":
        page.keyboard.press(key)
    _press(page, "Enter", re.compile(r"/annotate$"))

    with server.api("alice") as api:
        stored = api.get(f"/api/v1/projects/{slug}/items/{item_id}/annotation").json()
        candidates = api.get(f"/api/v1/projects/{slug}/items/{item_id}").json()["candidates"]
    assert stored["ranking"] == {str(candidates[0]["id"]): 2, str(candidates[1]["id"]): 1}
    assert stored["ratings"] == {"helpfulness": 3, "correctness": 4, "harmlessness": 5}


def test_skip_then_nothing_left(server, open_page):
    slug = server.new_project(ANSWERED[:2])
    page = open_page("alice")
    _start(page, slug)
    skipped = _item_id(page)

    _press(page, "s", lambda url: not url.endswith(f"/items/{skipped}"))
    second = _item_id(page)
    for key in "555":
        page.keyboard.press(key)
    _press(page, "Enter", lambda url: url.endswith(f"/items/{skipped}"))
    for key in "555":
        page.keyboard.press(key)
    _press(page, "Enter", re.compile(r"/annotate$"))

    assert second != skipped
    reason = page.locator("[data-reason]")
    assert reason.get_attribute("data-reason") == "all_done"
    assert "All done" in reason.inner_text()


def test_flag_mode_by_keyboard(server, open_page):
    slug = server.new_project([{"instruction": "Tell me the home address of my neighbour.", "input": "", "output": ""}])
    page = open_page("alice")
    _start(page, slug)
    item_id = _item_id(page)

    _wait_for_focus(page, "#response")
    page.keyboard.press("Escape")
    page.keyboard.press("f")
    page.keyboard.press("1")
    page.keyboard.press("2")
    page.keyboard.press("f")
    _press(page, "Control+Enter", re.compile(r"/annotate$"))

    stored = _own_annotations(server, "alice", slug, [item_id])[item_id]
    assert stored["flags"] == ["harmful", "personal_data"]


def test_reviewer_accepts_and_snapshot_has_it(server, open_page):
    slug = server.new_project(ANSWERED[:1])
    annotator = open_page("alice")
    _start(annotator, slug)
    annotator.locator("#response").fill("Idea 0, reviewed and kept.")
    annotator.keyboard.press("Escape")
    for key in "444":
        annotator.keyboard.press(key)
    _press(annotator, "Control+Enter", re.compile(r"/annotate$"))

    reviewer = open_page("carol")
    reviewer.goto(f"/projects/{slug}/review")
    assert "Idea 0, reviewed and kept." in reviewer.locator("[data-review-card]").inner_text()
    reviewer.keyboard.press("a")
    reviewer.wait_for_selector("[data-decided]")

    with server.api("admin") as admin:
        snapshot = admin.post(f"/api/v1/projects/{slug}/snapshots", json={"validation_fraction": 0}).json()
        exported = admin.get(f"/api/v1/projects/{slug}/snapshots/{snapshot['number']}/files/train.messages.jsonl")
    assert exported.status_code == 200
    assert "Idea 0, reviewed and kept." in exported.text


def test_two_annotators_never_share_an_item(server, open_page):
    slug = server.new_project([
        {"instruction": f"Question {i}", "input": "", "output": f"Answer {i}"} for i in range(6)
    ])
    alice = open_page("alice")
    bob = open_page("bob")
    _start(alice, slug)
    _start(bob, slug)

    seen = {"alice": [], "bob": []}
    pages = {"alice": alice, "bob": bob}
    active = ["alice", "bob"]
    while active:
        for name in list(active):
            page = pages[name]
            if not re.search(r"/items/\d+$", page.url):
                active.remove(name)
                continue
            current = _item_id(page)
            seen[name].append(current)
            for key in "333":
                page.keyboard.press(key)
            _press(page, "Enter", lambda url, current=current: not url.endswith(f"/items/{current}"))

    assert set(seen["alice"]).isdisjoint(seen["bob"])
    assert len(seen["alice"]) + len(seen["bob"]) == 6


def test_workspace_screenshots(server, open_page):
    rows = [{"messages": [
        {"role": "system", "content": "You are a friendly cooking assistant. Answer in the user's language."},
        {"role": "user", "content": "我想学习做饭，应该从哪里开始？"},
        {"role": "assistant", "content": "可以先从简单的家常菜开始，比如番茄炒蛋。"},
        {"role": "user", "content": "番茄炒蛋的步骤是什么？"},
        {"role": "assistant", "content": "1. 鸡蛋打散炒至凝固后盛出。\n2. 番茄切块炒出汁。\n3. 倒回鸡蛋，加盐调味。"},
    ]}]
    guidelines = (
        "## What a good response does\n\n1. Answers the question that was asked.\n"
        "2. Is correct; when unsure, says so.\n3. Uses lists for steps.\n\n中文提示请用简体中文回答。"
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for username, locale, name in (("alice", "en-US", "annotate-en.png"), ("lin", "zh-CN", "annotate-zh-CN.png")):
        slug = server.new_project(rows, guidelines=guidelines, name="Cooking assistant · 烹饪助手")
        page = open_page(username, locale=locale)
        _start(page, slug)
        editor = page.locator("#response")
        editor.fill("1. 鸡蛋打散，炒至刚凝固后盛出。\n2. 番茄切块炒出汁。\n3. 倒回鸡蛋，加盐和少许糖调味。")
        editor.dispatch_event("input")
        page.wait_for_selector("#diff ins")
        page.keyboard.press("Escape")
        for key in "45":
            page.keyboard.press(key)
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True, animations="allow", caret="initial")

    assert (SCREENSHOTS / "annotate-en.png").stat().st_size > 10_000
    assert (SCREENSHOTS / "annotate-zh-CN.png").stat().st_size > 10_000


def test_login_page_then_workspace(server, browser, console_errors):
    context = browser.new_context(base_url=server.base_url)
    page = context.new_page()
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
    slug = server.new_project(ANSWERED[:1])

    page.goto(f"/projects/{slug}/annotate")
    assert "/login" in page.url
    log_in(page, "bob")
    page.goto(f"/projects/{slug}/annotate")

    assert page.locator("button[autofocus]").is_visible()
    context.close()
