"""Jinja2 environment for the pages: autoescape on, translations per request."""

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from markupsafe import Markup

from app.i18n.catalog import load_catalog
from app.i18n.locales import LOCALE_NAMES, SUPPORTED_LOCALES
from app.web.markdown import render_markdown

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "templates"


@pass_context
def _gettext(context, message: str, **variables: Any) -> str:
    translated = load_catalog(context.get("locale", "en")).get(message, message)
    if context.eval_ctx.autoescape:
        # Markup % escapes each variable, so user text inside a translated sentence stays text.
        translated = Markup(translated)
    return translated % variables if variables else translated


@pass_context
def _ngettext(context, singular: str, plural: str, count: int, **variables: Any) -> str:
    message = singular if count == 1 else plural
    catalog = load_catalog(context.get("locale", "en"))
    # zh-CN has one plural form, so the plural msgid doubles as the key for both.
    translated = catalog.get(message, message)
    if context.eval_ctx.autoescape:
        translated = Markup(translated)
    return translated % {"count": count, **variables}


def _time_element(value: datetime, fmt: str = "%Y-%m-%d %H:%M UTC") -> Markup:
    """Render a UTC timestamp as a <time> element with its ISO form in `datetime`."""
    return Markup('<time datetime="{}">{}</time>').format(value.isoformat(), value.strftime(fmt))


def _build_environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(["html", "xml"], default_for_string=True, default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals.update(
        _=_gettext, gettext=_gettext, ngettext=_ngettext,
        supported_locales=SUPPORTED_LOCALES, locale_names=LOCALE_NAMES,
    )
    environment.filters["markdown"] = render_markdown
    environment.filters["time"] = _time_element
    return environment


templates = _build_environment()


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, *, status_code: int = 200,
) -> HTMLResponse:
    """Render a template with the request's locale, user and CSRF token; routes pick page or partial."""
    state = request.state
    values = {
        "request": request,
        "locale": getattr(state, "locale", "en"),
        "current_user": getattr(state, "user", None),
        "csrf_token": getattr(state, "csrf_token", ""),
        **(context or {}),
    }
    html = templates.get_template(template).render(values)
    response = HTMLResponse(html, status_code=status_code)
    response.headers["Vary"] = "HX-Request, Accept-Language, Cookie"
    return response
