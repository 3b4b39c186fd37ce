"""The ASGI application: routers, static files, error handling, security headers."""

import functools
import gc
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

import app.models  # noqa: F401  (registers every table, so foreign keys resolve)
from app.config import get_settings
from app.deps import LoginRequired
from app.errors import DomainError
from app.i18n.locales import choose_locale
from app.logging import configure_logging, get_logger
from app.web.security import SecurityHeadersMiddleware
from app.web.templating import render

log = get_logger(__name__)

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error_message_for_page(request: Request, status_code: int, message: str) -> Response:
    if not hasattr(request.state, "locale"):
        request.state.locale = choose_locale(None, request.headers.get("accept-language"))
    template = "partials/error.html" if request.headers.get("HX-Request") else "error.html"
    response = render(request, template, {"status_code": status_code, "message": message}, status_code=status_code)
    if request.headers.get("HX-Request"):
        # htmx does not swap 4xx/5xx bodies by default; retarget the message to the page's error area.
        response.headers["HX-Retarget"] = "#messages"
        response.headers["HX-Reswap"] = "innerHTML"
    return response


async def _domain_error(request: Request, error: DomainError) -> Response:
    if error.status_code >= 500:
        log.error("request failed", path=request.url.path, code=error.code)
    if _wants_json(request):
        return JSONResponse(
            {"error": {"code": error.code, "message": error.message, **error.details}},
            status_code=error.status_code,
        )
    return _error_message_for_page(request, error.status_code, error.message)


async def _validation_error(request: Request, error: RequestValidationError) -> Response:
    problems = []
    for problem in error.errors():
        location = ".".join(str(part) for part in problem.get("loc", ()) if part != "body")
        problems.append(f"{location or 'body'}: {problem.get('msg')}")
    message = "invalid request: " + "; ".join(problems)
    if _wants_json(request):
        return JSONResponse(
            {"error": {"code": "invalid_input", "message": message, "problems": problems}}, status_code=422
        )
    return _error_message_for_page(request, 422, message)


async def _login_required(request: Request, _error: LoginRequired) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.headers.get("HX-Request"):
        response = Response(status_code=204)
        response.headers["HX-Redirect"] = "/login?next=" + quote(target, safe="")
        return response
    return RedirectResponse("/login?next=" + quote(target, safe=""), status_code=303)


def create_app() -> FastAPI:
    settings = get_settings()
    configure_logging(json=settings.environment == "production")

    app = FastAPI(title="sftdesk", version="0.1.0", docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(LoginRequired, _login_required)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    from app import routers

    for router in routers.all_routers():
        app.include_router(router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    log.info("app created", environment=settings.environment)
    _freeze_startup_objects()
    return app


@functools.cache
def _freeze_startup_objects() -> None:
    """Keep the garbage collector away from what start-up loaded, once per process.

    Modules, routes, models and templates never become garbage, yet every full collection walked
    them all again. After a few thousand requests those collections made the slowest 1% of paced
    requests on PostgreSQL two to three times slower (bench/annotators.py, paced after flat).
    """
    gc.collect()
    gc.freeze()
