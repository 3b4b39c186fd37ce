"""Login, logout and account pages."""

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from app.auth import service
from app.auth.tokens import new_csrf_token, tokens_equal
from app.deps import DB, LOGIN_CSRF_COOKIE, SESSION_COOKIE, AppSettings, PageUser, TransactionRoute
from app.errors import NotAuthenticated, PermissionDenied
from app.i18n.catalog import translate
from app.i18n.locales import choose_locale
from app.web.templating import render

router = APIRouter(include_in_schema=False, route_class=TransactionRoute)


def _safe_next(next_url: str | None) -> str:
    """Allow only same-site paths as the post-login target."""
    if not next_url or not next_url.startswith("/") or next_url.startswith("//"):
        return "/"
    parts = urlsplit(next_url)
    if parts.scheme or parts.netloc:
        return "/"
    return next_url


def _login_page(request: Request, settings, *, next_url: str, error: str | None = None,
                username: str | None = None, status_code: int = 200) -> Response:
    request.state.locale = choose_locale(None, request.headers.get("accept-language"))
    login_csrf = new_csrf_token()
    response = render(
        request, "login.html",
        {"login_csrf": login_csrf, "next_url": next_url, "error": error, "username": username},
        status_code=status_code,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, login_csrf, httponly=True, samesite="strict", secure=settings.secure_cookies,
        max_age=3600, path="/login",
    )
    return response


@router.get("/login")
def login_form(request: Request, settings: AppSettings, next: str | None = None) -> Response:
    return _login_page(request, settings, next_url=_safe_next(next))


@router.post("/login")
def login(
    request: Request, db: DB, settings: AppSettings,
    username: Annotated[str, Form()], password: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/",
) -> Response:
    cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie_token or not csrf_token or not tokens_equal(cookie_token, csrf_token):
        raise PermissionDenied("missing or invalid CSRF token: reload the login page and try again")
    locale = choose_locale(None, request.headers.get("accept-language"))
    try:
        user = service.authenticate(db, username, password)
    except NotAuthenticated:
        return _login_page(
            request, settings, next_url=_safe_next(next), username=username, status_code=401,
            error=translate(locale, "Invalid username or password."),
        )

    secret, _ = service.start_session(db, user, settings.session_max_age_s)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE, secret, httponly=True, samesite="lax", secure=settings.secure_cookies,
        max_age=settings.session_max_age_s, path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, db: DB, user: PageUser) -> Response:
    service.end_session(db, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _account_page(request: Request, db, user, new_token: str | None = None) -> Response:
    return render(request, "account/index.html", {
        "tokens": service.list_api_tokens(db, user), "new_token": new_token,
    })


@router.get("/account")
def account(request: Request, db: DB, user: PageUser) -> Response:
    return _account_page(request, db, user)


@router.post("/account/locale")
def set_locale(request: Request, db: DB, user: PageUser, locale: Annotated[str, Form()] = "") -> Response:
    service.set_locale(db, user, locale or None)
    return RedirectResponse("/account", status_code=303)


@router.post("/account/tokens")
def create_token(request: Request, db: DB, user: PageUser, name: Annotated[str, Form()]) -> Response:
    issued = service.create_api_token(db, user, name)
    response = _account_page(request, db, user, new_token=issued.secret)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(request: Request, token_id: int, db: DB, user: PageUser) -> Response:
    service.revoke_api_token(db, user, token_id)
    return RedirectResponse("/account", status_code=303)
