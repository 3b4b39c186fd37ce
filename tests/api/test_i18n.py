from app.i18n.extract import find_messages, missing_translations
from app.i18n.locales import choose_locale, parse_accept_language


def test_catalogs_complete():
    messages = find_messages()
    assert len(messages) > 50
    assert missing_translations("en", messages) == []
    assert missing_translations("zh-CN", messages) == []


def test_accept_language_order():
    assert parse_accept_language("en;q=0.4, zh-CN;q=0.9") == ["zh-CN", "en"]
    assert parse_accept_language("fr-FR, zh-Hans-CN;q=0.5") == ["zh-CN"]
    assert parse_accept_language("zh-TW") == []
    assert parse_accept_language("") == []


def test_user_locale_wins():
    assert choose_locale("zh-CN", "en-US") == "zh-CN"
    assert choose_locale(None, "zh") == "zh-CN"
    assert choose_locale(None, "de-DE") == "en"
