"""Helpers for the browser tests, in a module of their own so imports do not depend on conftest."""

PASSWORD = "correct-horse-battery"


def log_in(page, username: str) -> None:
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.press("input[name=password]", "Enter")
    page.wait_for_url(lambda url: "/login" not in url)
