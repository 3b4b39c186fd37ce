"""Request dependencies: the unit of work, the caller, and CSRF checks."""

import functools
import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any, get_origin

from fastapi import Depends, Request, params
from fastapi.concurrency import run_in_threadpool
from fastapi.dependencies.utils import get_typed_signature
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.auth.models import User
from app.auth.tokens import tokens_equal
from app.config import Settings, get_settings
from app.db import end_session, new_session, run_in_turn, turn_ready, writer_turn
from app.errors import NotAuthenticated, PermissionDenied
from app.i18n.locales import choose_locale

SESSION_COOKIE = "sftdesk_session"
LOGIN_CSRF_COOKIE = "sftdesk_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FORM_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Set in a session's info once its route has committed and closed it.
SESSION_ENDED = "sftdesk_ended"


class LoginRequired(Exception):
    """Raised by page routes for an anonymous visitor; the handler redirects to the login page."""


async def submitted_csrf_token(request: Request) -> str | None:
    """Read the CSRF token of a browser's unsafe request, before any database work.

    get_db depends on this, so a request waits for its body before it takes its SQLite writer
    turn. The user lookup itself runs in the threadpool, so no blocking database call runs on the
    event loop.
    """
    if request.method in SAFE_METHODS or _bearer_token(request) is not None:
        return None
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FORM_FIELD)
        return value if isinstance(value, str) else None
    return None


def _bearer_token(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


CsrfToken = Annotated[str | None, Depends(submitted_csrf_token)]


async def get_db(request: Request, _csrf: CsrfToken) -> AsyncIterator[Session]:
    """Yield the request's session; commit when the route returns, roll back if it raises.

    A write request on SQLite first waits its turn at the writer gate, here on the event loop,
    after any form body is read (through the CSRF dependency), so a slow upload keeps no writer waiting.
    Opening the session does no I/O (the connection is taken at the first statement). A sync
    route of a TransactionRoute commits in its own worker thread; any other route's commit, and
    every rollback, runs in a worker thread here.
    """
    write = request.method not in SAFE_METHODS
    async with writer_turn(write=write):
        session = new_session(write=write)
        try:
            yield session
        except BaseException:
            await run_in_threadpool(end_session, session, commit=False)
            raise
        if not session.info.get(SESSION_ENDED):
            await run_in_threadpool(end_session, session, commit=True)


def short_write(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a sync endpoint whose write transaction takes milliseconds, to run it on the event loop.

    Behind a TransactionRoute, such an endpoint runs on the event loop instead of in a worker
    thread once its request has the SQLite writer turn (see app.db.turn_ready). No other
    writer could run meanwhile anyway, and the trip to a worker thread and back cost more CPU
    than a queue request spends in SQLite. Reads and PostgreSQL still go to a worker thread.
    Mark only endpoints whose work is bounded and small: while one runs, no other request is served.
    """
    endpoint.short_write = True  # type: ignore[attr-defined]
    return endpoint


def _committing_endpoint(endpoint: Callable[..., Any], callers: frozenset[str]) -> Callable[..., Any]:
    """Wrap a sync endpoint so that it looks up its caller, runs and commits in one worker thread.

    The parameters named in callers arrive as functions of the session (see _CALLER_LOOKUPS) and
    are called there before the endpoint runs. The wrapper itself is async, so FastAPI validates
    and serializes the result on the event loop instead of in one more worker thread. A
    short_write endpoint skips the worker thread when its request has the SQLite writer turn.
    """
    on_event_loop = getattr(endpoint, "short_write", False)

    def run_and_commit(values: dict[str, Any]) -> Any:
        session = values["db"]
        for name in callers:
            values[name] = values[name](session)
        result = endpoint(**values)
        end_session(session, commit=True)
        session.info[SESSION_ENDED] = True
        return result

    @functools.wraps(endpoint)
    async def run(**values: Any) -> Any:
        if on_event_loop and turn_ready():
            return run_in_turn(run_and_commit, values)
        return await run_in_threadpool(run_and_commit, values)

    return run


class TransactionRoute(APIRoute):
    """A route whose sync endpoint finds its caller and commits in the endpoint's worker thread.

    FastAPI runs each sync dependency in a worker thread of its own. Each trip through the event
    loop and the threadpool cost about 0.27 ms of CPU per request in bench/annotators.py on a
    2-core machine, more than some queue requests spend in the database. On SQLite each trip also
    lies inside the single writer's turn, which every other writer waits for. So the endpoint
    takes the request session as its `db` parameter, and its ApiUser, PageUser or
    OptionalPageUser parameter is looked up with that session, and the session commits, in the
    endpoint's thread. A short_write endpoint may run on the event loop instead. Async endpoints
    and endpoints without `db` are left as they are.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint) and "db" in inspect.signature(endpoint).parameters:
            typed = get_typed_signature(endpoint).parameters
            lookups = {name: lookup for name, parameter in typed.items() if (lookup := _caller_lookup(parameter))}
            parameters = [
                parameter.replace(annotation=Annotated[Callable[[Session], Any], Depends(lookups[name])])
                if name in lookups else parameter
                for name, parameter in typed.items()
            ]
            wrapped = _committing_endpoint(endpoint, frozenset(lookups))
            # The return annotation stays, because FastAPI derives the response model from it.
            wrapped.__signature__ = inspect.signature(endpoint).replace(parameters=parameters)  # type: ignore[attr-defined]
            endpoint = wrapped
        super().__init__(path, endpoint, **kwargs)


DB = Annotated[Session, Depends(get_db, scope="function")]
AppSettings = Annotated[Settings, Depends(get_settings)]


def _resolve_user(request: Request, db: Session, submitted: str | None) -> User | None:
    bearer = _bearer_token(request)
    if bearer is not None:
        user = auth_service.user_for_api_token(db, bearer)
        if user is None:
            raise NotAuthenticated("invalid or revoked API token: create a new one under Account > API tokens")
        request.state.auth_method = "token"
        _remember(request, user, csrf_token="")
        return user

    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    web_session = auth_service.session_for_cookie(db, cookie)
    if web_session is None:
        return None
    if request.method not in SAFE_METHODS:
        if not submitted or not tokens_equal(submitted, web_session.csrf_token):
            raise PermissionDenied("missing or invalid CSRF token: reload the page and try again")
    request.state.auth_method = "session"
    _remember(request, web_session.user, csrf_token=web_session.csrf_token)
    return web_session.user


@dataclass(frozen=True)
class UserView:
    """A plain copy of the caller for the templates, so error pages still render after a rollback."""

    id: int
    username: str
    display_name: str
    role: str
    locale: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _remember(request: Request, user: User, *, csrf_token: str) -> None:
    request.state.user = UserView(
        id=user.id, username=user.username, display_name=user.display_name, role=user.role, locale=user.locale,
    )
    request.state.csrf_token = csrf_token
    request.state.locale = choose_locale(user.locale, request.headers.get("accept-language"))


def api_user(request: Request, db: DB, csrf: CsrfToken) -> User:
    user = _resolve_user(request, db, csrf)
    if user is None:
        raise NotAuthenticated("authentication required: send 'Authorization: Bearer <API token>'")
    return user


def page_user(request: Request, db: DB, csrf: CsrfToken) -> User:
    user = _resolve_user(request, db, csrf)
    if user is None:
        raise LoginRequired()
    return user


def optional_page_user(request: Request, db: DB, csrf: CsrfToken) -> User | None:
    return _resolve_user(request, db, csrf)


def require_admin(user: User) -> None:
    if not user.is_admin:
        raise PermissionDenied("this action needs the admin role")


ApiUser = Annotated[User, Depends(api_user)]
PageUser = Annotated[User, Depends(page_user)]
OptionalPageUser = Annotated[User | None, Depends(optional_page_user)]


def _has_credentials(request: Request) -> bool:
    return _bearer_token(request) is not None or bool(request.cookies.get(SESSION_COOKIE))


async def _api_user_lookup(request: Request, csrf: CsrfToken) -> Callable[[Session], User]:
    if not _has_credentials(request):
        raise NotAuthenticated("authentication required: send 'Authorization: Bearer <API token>'")
    return functools.partial(api_user, request, csrf=csrf)


async def _page_user_lookup(request: Request, csrf: CsrfToken) -> Callable[[Session], User]:
    if not _has_credentials(request):
        raise LoginRequired()
    return functools.partial(page_user, request, csrf=csrf)


async def _optional_page_user_lookup(request: Request, csrf: CsrfToken) -> Callable[[Session], User | None]:
    return functools.partial(optional_page_user, request, csrf=csrf)


# For a TransactionRoute: each caller dependency, and the async dependency that replaces it. The
# replacement reads only the request (a visitor without any credential is turned away at once) and
# returns the lookup, which the endpoint's thread runs with the request session.
_CALLER_LOOKUPS: dict[Callable[..., Any], Callable[..., Any]] = {
    api_user: _api_user_lookup,
    page_user: _page_user_lookup,
    optional_page_user: _optional_page_user_lookup,
}


def _caller_lookup(parameter: inspect.Parameter) -> Callable[..., Any] | None:
    if get_origin(parameter.annotation) is not Annotated:
        return None
    for marker in parameter.annotation.__metadata__:
        if isinstance(marker, params.Depends) and marker.dependency in _CALLER_LOOKUPS:
            return _CALLER_LOOKUPS[marker.dependency]
    return None
