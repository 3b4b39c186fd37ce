"""Supported UI locales and the choice between them."""

SUPPORTED_LOCALES = ("en", "zh-CN")
DEFAULT_LOCALE = "en"
LOCALE_NAMES = {"en": "English", "zh-CN": "简体中文"}


def _match(tag: str) -> str | None:
    tag = tag.strip().lower().replace("_", "-")
    if not tag:
        return None
    if tag == "en" or tag.startswith("en-"):
        return "en"
    # Simplified Chinese: zh, zh-CN, zh-SG, zh-Hans(-*). Traditional tags fall back to the next choice.
    if tag in ("zh", "zh-cn", "zh-sg", "zh-hans") or tag.startswith("zh-hans-"):
        return "zh-CN"
    return None


def parse_accept_language(header: str | None) -> list[str]:
    """Return the supported locales named by an Accept-Language header, best first."""
    if not header:
        return []
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        locale = _match(tag)
        if locale is not None and quality > 0:
            weighted.append((-quality, position, locale))
    seen: list[str] = []
    for _, _, locale in sorted(weighted):
        if locale not in seen:
            seen.append(locale)
    return seen


def choose_locale(user_locale: str | None, accept_language: str | None) -> str:
    if user_locale in SUPPORTED_LOCALES:
        return user_locale
    preferred = parse_accept_language(accept_language)
    return preferred[0] if preferred else DEFAULT_LOCALE
