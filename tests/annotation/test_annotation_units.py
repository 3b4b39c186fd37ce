"""Pure helpers of the annotation package: diffs, settings, merge patches, preference pairs."""

import pytest

from app.annotation.diff import render_diff, tokenize
from app.annotation.preference import preference_pair
from app.annotation.questions import (
    AnnotationSettings,
    merge_patch,
    parse_settings,
    settings_to_store,
)
from app.errors import InvalidInput


def test_diff_marks_changed_words():
    html, stats = render_diff("The cat sat on the mat.", "The dog sat on the mat!")

    assert str(html) == "The <del>cat</del><ins>dog</ins> sat on the mat<del>.</del><ins>!</ins>"
    assert stats.inserted_chars == 4
    assert stats.deleted_chars == 4


def test_diff_marks_single_cjk_characters():
    html, _ = render_diff("今天的会议推迟到下午三点。", "今天的会议推迟到下午四点。")

    assert str(html) == "今天的会议推迟到下午<del>三</del><ins>四</ins>点。"
    assert tokenize("机器学习 model") == ["机", "器", "学", "习", " ", "model"]


def test_diff_escapes_markup():
    html, _ = render_diff("safe", "<img src=x onerror=alert(1)>")

    assert "<img" not in str(html)
    assert "&lt;img src=x onerror=alert(1)&gt;" in str(html)


def test_diff_keeps_unchanged_lines_and_reports_no_change():
    original = "line one\nline two\nline three\n"

    same_html, same = render_diff(original, original)
    html, _ = render_diff(original, "line one\nline 2\nline three\n")

    assert not same.changed
    assert str(same_html) == original
    assert str(html) == "line one\nline <del>two</del><ins>2</ins>\nline three\n"


def test_diff_of_long_text_stays_fast():
    original = "\n".join(f"sentence {i} with some words" for i in range(5_000))
    edited = original.replace("sentence 2500 ", "phrase 2500 ")

    html, stats = render_diff(original, edited)

    assert "<del>sentence</del><ins>phrase</ins>" in str(html)
    assert stats.deleted_chars == len("sentence")


def test_default_settings():
    settings = parse_settings({})

    assert settings.criterion_keys() == ["helpfulness", "correctness", "harmlessness"]
    assert list(settings.scale()) == [1, 2, 3, 4, 5]
    assert settings.flag_keys() == ["personal_data", "harmful", "unanswerable", "low_quality"]
    assert settings.ranking.enabled and not settings.pairwise.enabled
    assert settings.shortcuts.submit == "Enter"


@pytest.mark.parametrize(("raw", "message"), [
    ({"rubric": {"scale_min": 3, "scale_max": 3}}, "invalid scale 3 to 3"),
    ({"rubric": {"criteria": [{"key": "a"}, {"key": "a"}]}}, "duplicate rubric criterion keys"),
    ({"rubric": {"criteria": [{"key": "Bad Key"}]}}, "invalid key 'Bad Key'"),
    ({"shortcuts": {"skip": "3"}}, "digits set ratings and ranks"),
    ({"shortcuts": {"skip": "f"}}, "used for both"),
    ({"shortcuts": {"help": "F1"}}, "invalid key 'F1' for help"),
    ({"lease_s": 5}, "lease_s"),
    ({"unknown": 1}, "unknown"),
    ({"flags": [{"key": "x"}, {"key": "x"}]}, "duplicate flag keys"),
])
def test_invalid_settings_are_named(raw, message):
    with pytest.raises(InvalidInput) as caught:
        parse_settings(raw)

    assert message in caught.value.message


def test_stored_settings_keep_only_what_was_set():
    stored = settings_to_store(parse_settings({"rubric": {"scale_max": 7}, "lease_s": 600}))

    assert stored == {"rubric": {"scale_max": 7}, "lease_s": 600}
    assert AnnotationSettings.model_validate(stored).rubric.criteria[0].key == "helpfulness"


def test_merge_patch_follows_rfc_7396():
    current = {"rubric": {"scale_max": 7, "required": False}, "lease_s": 600}

    patch = {"rubric": {"required": None, "enabled": False}, "lease_s": None, "note": {"enabled": False}}

    merged = merge_patch(current, patch)

    assert merged == {"rubric": {"scale_max": 7, "enabled": False}, "note": {"enabled": False}}
    assert current == {"rubric": {"scale_max": 7, "required": False}, "lease_s": 600}


def test_preference_pair_from_choice_and_ranking():
    assert preference_pair({}, {"preferred": 5, "other": 6}) == (5, 6)
    assert preference_pair({"3": 2, "1": 1, "2": 1, "4": 2}, {}) == (1, 3)
    assert preference_pair({"1": 1, "2": 1}, {}) is None
    assert preference_pair({"1": 1}, {}) is None
    assert preference_pair({"1": 2, "2": 1}, {"preferred": 1, "other": 2}) == (1, 2)
