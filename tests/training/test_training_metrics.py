import math

import pytest

from app.training.metrics import (
    choose_bleu_tokenizer,
    compare_metrics,
    perplexity,
    score_generations,
    tokenize_for_rouge,
)

pytestmark = [pytest.mark.training, pytest.mark.xdist_group("training")]


def test_chinese_scores_between_zero_and_one() -> None:
    scores = score_generations(["今天天气很好"], ["今天天气不错"])

    assert 0.0 < scores["rouge_l"] < 1.0
    assert 0.0 < scores["bleu"] < 1.0
    assert 0.0 < scores["chrf"] < 1.0
    assert scores["bleu_tokenizer"] == "zh"


def test_identical_chinese_scores_one() -> None:
    scores = score_generations(["今天天气很好"], ["今天天气很好"])

    assert scores["rouge_l"] == 1.0
    assert scores["bleu"] == 1.0
    assert scores["chrf"] == 1.0


def test_english_uses_13a_tokenizer() -> None:
    scores = score_generations(["The cat sat on the mat."], ["The cat is on the mat."])

    assert scores["bleu_tokenizer"] == "13a"
    assert 0.0 < scores["rouge_l"] < 1.0
    assert 0.0 < scores["bleu"] < 1.0


def test_rouge_tokens_split_cjk_and_keep_words() -> None:
    assert tokenize_for_rouge("今天 Hello, Wörld 42 猫") == ["今", "天", "hello", "wörld", "42", "猫"]
    assert tokenize_for_rouge("こんにちは") == ["こ", "ん", "に", "ち", "は"]


def test_mixed_corpus_uses_zh_for_bleu() -> None:
    assert choose_bleu_tokenizer(["hello"], ["你好"]) == "zh"
    assert choose_bleu_tokenizer(["hello"], ["hi"]) == "13a"


def test_score_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="same length"):
        score_generations(["a", "b"], ["a"])


def test_score_rejects_empty_input() -> None:
    with pytest.raises(ValueError, match="at least one"):
        score_generations([], [])


def test_compare_metrics_direction() -> None:
    baseline = {"validation_loss": 2.0, "perplexity": math.exp(2.0), "rouge_l": 0.1, "bleu": 0.2, "chrf": 0.3}
    candidate = {"validation_loss": 1.5, "perplexity": math.exp(1.5), "rouge_l": 0.2, "bleu": 0.1, "chrf": 0.3}

    comparison = compare_metrics(baseline, candidate)

    assert comparison["validation_loss"]["improved"] is True
    assert comparison["validation_loss"]["delta"] == pytest.approx(-0.5)
    assert comparison["perplexity"]["improved"] is True
    assert comparison["rouge_l"]["improved"] is True
    assert comparison["bleu"]["improved"] is False
    assert comparison["chrf"]["improved"] is False


def test_perplexity_overflow_is_infinite() -> None:
    assert perplexity(0.0) == 1.0
    assert perplexity(10_000.0) == math.inf
