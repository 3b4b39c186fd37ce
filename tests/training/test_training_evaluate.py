import math

import pytest

from app.training.errors import ConfigError, TrainingDataError
from app.training.evaluate import run_evaluation
from app.training.metrics import compare_metrics

pytestmark = [pytest.mark.training, pytest.mark.xdist_group("training")]

EVALUATE_CONFIG = {"max_new_tokens": 8, "max_examples": 4, "batch_size": 4, "max_length": 128, "sample_count": 2}


@pytest.fixture(scope="module")
def base_and_tuned(finetuned_run, tiny_model_dir, small_snapshot) -> tuple[dict, dict]:
    base = run_evaluation(tiny_model_dir, None, small_snapshot, EVALUATE_CONFIG)
    tuned = run_evaluation(tiny_model_dir, finetuned_run["adapter_path"], small_snapshot, EVALUATE_CONFIG)
    return base, tuned


def test_evaluation_returns_all_metrics(base_and_tuned) -> None:
    for result in base_and_tuned:
        assert result["validation_loss"] > 0
        assert result["perplexity"] == pytest.approx(math.exp(result["validation_loss"]))
        for name in ("rouge_l", "bleu", "chrf", "stopped_on_eos_rate"):
            assert 0.0 <= result[name] <= 1.0, name
        assert result["bleu_tokenizer"] == "zh"
        assert result["scored_examples"] == 4
        assert result["loss_examples"] == 6
        assert result["loss_tokens"] > 0
        assert len(result["samples"]) == 2
        assert isinstance(result["samples"][0]["prediction"], str)
        assert result["samples"][0]["reference"] == "Paris."
        assert result["data_report"]["file"] == "validation.messages.jsonl"


def test_base_and_tuned_compared(base_and_tuned) -> None:
    base, tuned = base_and_tuned

    comparison = compare_metrics(base, tuned)

    assert base["adapter_path"] is None
    assert tuned["adapter_path"] is not None
    assert base["loss_tokens"] == tuned["loss_tokens"]
    assert set(comparison) == {"validation_loss", "perplexity", "rouge_l", "bleu", "chrf"}
    # The adapter changes the model, so the loss on the same tokens must differ.
    assert comparison["validation_loss"]["delta"] != 0.0


def test_progress_reports_both_phases(tiny_model_dir, small_snapshot) -> None:
    events: list[dict] = []

    run_evaluation(tiny_model_dir, None, small_snapshot, {**EVALUATE_CONFIG, "max_examples": 2}, on_progress=events.append)

    assert {event["phase"] for event in events} == {"loss", "generation"}
    assert events[-1] == {"phase": "generation", "done": 2, "total": 2}


def test_missing_validation_file_raises(tiny_model_dir, tmp_path) -> None:
    with pytest.raises(TrainingDataError, match="validation.messages.jsonl"):
        run_evaluation(tiny_model_dir, None, tmp_path, EVALUATE_CONFIG)


def test_invalid_evaluate_config_raises(tiny_model_dir, small_snapshot) -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        run_evaluation(tiny_model_dir, None, small_snapshot, {"batch_size": 0})
