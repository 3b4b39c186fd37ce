"""Find the UI strings in templates and Python code, and write or check the .po catalogs.

Usage: python -m app.i18n.extract [--check]
Without --check, adds missing msgids to every catalog (with an empty translation) and keeps the
existing translations. With --check, exits 1 when a catalog lacks a msgid or a translation.
"""

import re
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

from app.i18n.catalog import catalog_path
from app.i18n.locales import DEFAULT_LOCALE, SUPPORTED_LOCALES

ROOT = Path(__file__).resolve().parents[2]
_STRING = r'"((?:[^"\\]|\\.)*)"|\'((?:[^\'\\]|\\.)*)\''
# _("..."), gettext("..."), N_("..."), translate(locale, "...")
SINGULAR = re.compile(r'(?<![\w.])(?:_|gettext|N_)\(\s*(?:' + _STRING + r')')
TRANSLATE = re.compile(r'translate\(\s*[\w.]+\s*,\s*(?:' + _STRING + r')')
PLURAL = re.compile(r'ngettext\(\s*(?:' + _STRING + r')\s*,\s*(?:' + _STRING + r')')


def _unescape(value: str) -> str:
    return value.replace('\\"', '"').replace("\\'", "'").replace("\\\\", "\\")


def find_messages() -> list[str]:
    """Return every msgid used by the UI, in first-seen order, plural forms included."""
    messages: dict[str, None] = {}
    sources = sorted((ROOT / "templates").rglob("*.html")) + sorted((ROOT / "app").rglob("*.py"))
    for path in sources:
        if path.name == "extract.py":
            continue
        text = path.read_text(encoding="utf-8")
        for pattern in (SINGULAR, TRANSLATE):
            for match in pattern.finditer(text):
                messages[_unescape(match.group(1) or match.group(2) or "")] = None
        for match in PLURAL.finditer(text):
            messages[_unescape(match.group(1) or match.group(2) or "")] = None
            messages[_unescape(match.group(3) or match.group(4) or "")] = None
    messages.pop("", None)
    return list(messages)


def _read(locale: str) -> Catalog:
    path = catalog_path(locale)
    if not path.exists():
        return Catalog(locale=locale.replace("-", "_"), project="sftdesk")
    with path.open("rb") as handle:
        return read_po(handle, locale=locale.replace("-", "_"))


def missing_translations(locale: str, messages: list[str]) -> list[str]:
    catalog = _read(locale)
    missing = []
    for message in messages:
        entry = catalog.get(message)
        if entry is None or (locale != DEFAULT_LOCALE and not entry.string):
            missing.append(message)
    return missing


def update_catalogs(messages: list[str]) -> None:
    for locale in SUPPORTED_LOCALES:
        catalog = _read(locale)
        for message in messages:
            if catalog.get(message) is None:
                catalog.add(message, message if locale == DEFAULT_LOCALE else "")
        catalog_path(locale).parent.mkdir(parents=True, exist_ok=True)
        with catalog_path(locale).open("wb") as handle:
            write_po(handle, catalog, width=0, omit_header=False, sort_output=False)


def main() -> int:
    messages = find_messages()
    if "--check" in sys.argv:
        problems = {locale: missing_translations(locale, messages) for locale in SUPPORTED_LOCALES}
        for locale, missing in problems.items():
            for message in missing:
                print(f"{locale}: missing translation for {message!r}")
        return 1 if any(problems.values()) else 0
    update_catalogs(messages)
    print(f"{len(messages)} messages in {len(SUPPORTED_LOCALES)} catalogs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
