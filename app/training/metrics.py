"""Text-overlap scores of generated responses against references, for English and Chinese alike.

This module imports no ML framework, so the web process can score or compare runs.

- ROUGE-L (rouge-score): its default tokenizer drops every non-ASCII character, so Chinese would
  score 0 even for identical strings. `tokenize_for_rouge` instead splits CJK ideographs and kana
  into single characters and keeps runs of other letters and digits (any script) as lowercase words.
  The result is the mean F-measure over examples.
- BLEU (sacrebleu, corpus level): the default "13a" tokenizer treats a Chinese sentence as one word.
  When any prediction or reference contains CJK ideographs or kana, the whole corpus is scored with
  tokenize="zh", which splits ideographs into characters and tokenizes other text like "13a" does.
  The choice is made once per corpus so that every example is scored the same way.
- chrF (sacrebleu, corpus level) works on characters and needs no tokenizer.

All three scores are on a 0-1 scale (sacrebleu's 0-100 scores are divided by 100).
"""

import math
import re
from collections.abc import Sequence
from typing import Any

# CJK ideographs (unified, extension A, compatibility, extensions B and later) plus hiragana and katakana.
_CJK_CHARACTER = "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff]"
_CJK_PATTERN = re.compile(_CJK_CHARACTER)
_ROUGE_TOKEN_PATTERN = re.compile(rf"{_CJK_CHARACTER}|(?:(?!{_CJK_CHARACTER})[^\W_])+")


def contains_cjk(text: str) -> bool:
    """Return whether `text` contains a CJK ideograph or a kana character."""
    return _CJK_PATTERN.search(text) is not None


def tokenize_for_rouge(text: str) -> list[str]:
    """Split text into ROUGE tokens: one token per CJK character, one per run of other letters or digits."""
    return _ROUGE_TOKEN_PATTERN.findall(text.lower())


class _RougeTokenizer:
    """Adapter with the `tokenize` method that rouge-score expects of a custom tokenizer."""

    def tokenize(self, text: str) -> list[str]:
        return tokenize_for_rouge(text)


def choose_bleu_tokenizer(predictions: Sequence[str], references: Sequence[str]) -> str:
    """Return the sacrebleu tokenizer name for a corpus: "zh" when any text contains CJK, else "13a"."""
    if any(contains_cjk(text) for text in (*predictions, *references)):
        return "zh"
    return "13a"


def score_generations(predictions: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """Score predictions against one reference each and return ROUGE-L, BLEU and chrF on a 0-1 scale.

    Raises ValueError when the two lists differ in length or are empty.
    """
    if len(predictions) != len(references):
        raise ValueError(
            f"predictions and references must have the same length, got {len(predictions)} and {len(references)}"
        )
    if not predictions:
        raise ValueError("at least one prediction is needed to compute scores")

    from rouge_score import rouge_scorer
    import sacrebleu

    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_RougeTokenizer())
    rouge_l = [
        scorer.score(reference, prediction)["rougeL"].fmeasure
        for prediction, reference in zip(predictions, references, strict=True)
    ]

    bleu_tokenizer = choose_bleu_tokenizer(predictions, references)
    bleu = sacrebleu.corpus_bleu(list(predictions), [list(references)], tokenize=bleu_tokenizer)
    chrf = sacrebleu.corpus_chrf(list(predictions), [list(references)])

    return {
        "rouge_l": sum(rouge_l) / len(rouge_l),
        "bleu": _to_unit_interval(bleu.score),
        "chrf": _to_unit_interval(chrf.score),
        "bleu_tokenizer": bleu_tokenizer,
        "scored_examples": len(predictions),
    }


def _to_unit_interval(score: float) -> float:
    # sacrebleu reports 0-100 and can exceed 100 by a rounding error on identical texts.
    return min(max(score / 100.0, 0.0), 1.0)


def perplexity(mean_loss: float) -> float:
    """Return exp(mean_loss), or infinity where that overflows a float."""
    try:
        return math.exp(mean_loss)
    except OverflowError:
        return math.inf


# Metrics where a lower value is better; every other numeric metric is better when higher.
_LOWER_IS_BETTER = {"validation_loss", "perplexity"}
COMPARED_METRICS = ("validation_loss", "perplexity", "rouge_l", "bleu", "chrf")


def compare_metrics(baseline: dict[str, Any], candidate: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Compare two evaluation results metric by metric, such as a base model and its fine-tuned adapter.

    Returns, for each metric present in both, the two values, `delta` (candidate minus baseline) and
    `improved`, which accounts for loss and perplexity being better when lower.
    """
    comparison = {}
    for name in COMPARED_METRICS:
        before = baseline.get(name)
        after = candidate.get(name)
        if not isinstance(before, int | float) or not isinstance(after, int | float):
            continue
        delta = after - before
        improved = delta < 0 if name in _LOWER_IS_BETTER else delta > 0
        comparison[name] = {"baseline": before, "candidate": after, "delta": delta, "improved": improved}
    return comparison
