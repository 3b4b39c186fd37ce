"""Normalized text and the prompt and content hashes."""

from app.items.records import Message, content_hash, normalize_text, prompt_hash


def test_normalize_text_folds_case_width_and_whitespace():
    assert normalize_text("  Ｈello\u00a0\tWORLD\r\n ﬁne  ") == "hello world fine"


def test_prompt_hash_ignores_case_and_spacing():
    first = [Message("system", "Be brief."), Message("user", "What is  RAG?")]
    second = [Message("system", "be brief."), Message("user", "what is rag?\n")]

    assert prompt_hash(first) == prompt_hash(second)


def test_prompt_hash_depends_on_roles():
    as_user = [Message("user", "Hello")]
    as_system = [Message("system", "Hello")]

    assert prompt_hash(as_user) != prompt_hash(as_system)


def test_prompt_hash_is_sha256_hex():
    digest = prompt_hash([Message("user", "Hello")])

    assert len(digest) == 64
    assert int(digest, 16) >= 0


def test_prompt_hash_keeps_turn_boundaries():
    joined = [Message("user", "a b")]
    split = [Message("user", "a"), Message("user", "b")]

    assert prompt_hash(joined) != prompt_hash(split)


def test_content_hash_treats_empty_and_missing_response_alike():
    messages = [Message("user", "Hi")]

    assert content_hash(messages, None) == content_hash(messages, "")


def test_content_hash_changes_with_response():
    messages = [Message("user", "Hi")]

    assert content_hash(messages, "Hello") != content_hash(messages, "Goodbye")
    assert content_hash(messages, "Hello") == content_hash(messages, " hello ")


def test_content_hash_separates_chosen_from_response():
    messages = [Message("user", "Hi")]

    assert content_hash(messages, "Hello") != content_hash(messages, None, chosen="Hello")
