"""Translation catalogs: gettext .po files under app/i18n/catalogs, read once at start."""

from functools import lru_cache
from pathlib import Path

from babel.messages.pofile import read_po

from app.i18n.locales import DEFAULT_LOCALE, SUPPORTED_LOCALES

CATALOG_DIR = Path(__file__).parent / "catalogs"


def catalog_path(locale: str) -> Path:
    return CATALOG_DIR / f"{locale}.po"


@lru_cache
def load_catalog(locale: str) -> dict[str, str]:
    """Return msgid -> translation for one locale; untranslated entries are left out."""
    with catalog_path(locale).open("rb") as handle:
        catalog = read_po(handle, locale=locale.replace("-", "_"))
    translations: dict[str, str] = {}
    for message in catalog:
        if message.id and isinstance(message.id, str) and message.string:
            translations[message.id] = message.string
    return translations


def translate(locale: str, message: str) -> str:
    if locale not in SUPPORTED_LOCALES:
        locale = DEFAULT_LOCALE
    return load_catalog(locale).get(message, message)
