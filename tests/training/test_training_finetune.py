import json
from pathlib import Path

import pytest

from app.training.errors import ConfigError, TrainingDataError, TrainingError
from app.training.finetune import find_last_checkpoint, main, run_finetune

pytestmark = [pytest.mark.training, pytest.mark.xdist_group("training")]


def _config(model_dir: Path, **overrides) -> dict:
    config = {
        "base_model": str(model_dir),
        "max_steps": 4,
        "learning_rate": 1e-2,
        "max_length": 128,
        "per_device_train_batch_size": 4,
        "save_steps": 2,
        "logging_steps": 1,
    }
    config.update(overrides)
    return config


def _logits(model, tokenizer, text: str):
    import torch

    input_ids = torch.tensor([tokenizer(text)["input_ids"]])
    with torch.inference_mode():
        return model(input_ids=input_ids).logits


def test_lora_adapter_saved_and_reloads(finetuned_run, tiny_model_dir) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter_path = Path(finetuned_run["adapter_path"])
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(adapter_path)
    base_logits = _logits(base, tokenizer, "今天天气很好")
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter_path)

    assert finetuned_run["status"] == "completed"
    assert (adapter_path / "adapter_config.json").is_file()
    assert (adapter_path / "adapter_model.safetensors").is_file()
    assert finetuned_run["model_path"] is None
    assert "{% generation %}" in tokenizer.chat_template
    assert not _logits(tuned, tokenizer, "今天天气很好").allclose(base_logits)


def test_finetune_result_metrics(finetuned_run) -> None:
    metrics = finetuned_run["train_metrics"]

    assert metrics["global_step"] == 4
    assert metrics["max_steps"] == 4
    assert metrics["train_loss"] > 0
    assert finetuned_run["tokens_seen"] > 0
    assert finetuned_run["tokens_per_second"] > 0
    assert finetuned_run["peak_memory"]["peak_rss_bytes"] > 0
    assert finetuned_run["device"] == "cpu"
    assert finetuned_run["precision"] == "fp32"
    assert finetuned_run["gradient_checkpointing"] is False
    assert 0 < finetuned_run["trainable_parameters"] < finetuned_run["total_parameters"]
    assert finetuned_run["data_report"]["kept"] == 24
    assert [entry["step"] for entry in finetuned_run["loss_history"]] == [1, 2, 3, 4]
    assert finetuned_run["checkpoint_path"].endswith("checkpoint-4")
    stored = json.loads((Path(finetuned_run["adapter_path"]).parent / "result.json").read_text(encoding="utf-8"))
    assert stored["status"] == "completed"


def test_progress_reports_steps_and_eta(tiny_model_dir, small_snapshot, tmp_path) -> None:
    events: list[dict] = []

    run_finetune(_config(tiny_model_dir, max_steps=3, save_steps=10), small_snapshot, tmp_path, on_progress=events.append)

    assert events, "on_progress was never called"
    for event in events:
        assert set(event) == {"step", "total_steps", "loss", "epoch", "eta_seconds"}
        assert event["total_steps"] == 3
    assert [event["step"] for event in events[:3]] == [1, 2, 3]
    assert events[-1]["step"] == 3
    assert events[-1]["eta_seconds"] == 0
    assert all(event["loss"] > 0 for event in events)


def test_should_stop_ends_within_one_step(tiny_model_dir, small_snapshot, tmp_path) -> None:
    polls: list[int] = []

    def stop_after_first_step() -> bool:
        polls.append(1)
        return True

    result = run_finetune(
        _config(tiny_model_dir, max_steps=50, save_steps=100), small_snapshot, tmp_path, should_stop=stop_after_first_step
    )

    assert result["status"] == "stopped"
    assert result["train_metrics"]["global_step"] == 1
    assert len(polls) == 1
    assert result["adapter_path"] is None
    assert not (tmp_path / "adapter").exists()
    assert result["checkpoint_path"] == str(tmp_path / "checkpoints" / "checkpoint-1")


def test_resume_continues_from_newest_checkpoint(tiny_model_dir, small_snapshot, tmp_path) -> None:
    steps_seen: list[int] = []

    def stop_at_step_two() -> bool:
        steps_seen.append(len(steps_seen) + 1)
        return len(steps_seen) >= 2

    first = run_finetune(_config(tiny_model_dir), small_snapshot, tmp_path, should_stop=stop_at_step_two)
    second = run_finetune(_config(tiny_model_dir), small_snapshot, tmp_path, resume=True, on_progress=None)

    assert first["status"] == "stopped"
    assert first["train_metrics"]["global_step"] == 2
    assert second["resumed_from"] == str(tmp_path / "checkpoints" / "checkpoint-2")
    assert second["status"] == "completed"
    assert second["train_metrics"]["global_step"] == 4
    assert [entry["step"] for entry in second["loss_history"]][-2:] == [3, 4]
    assert Path(second["adapter_path"]).is_dir()


def test_resume_after_completion_returns_stored_result(tiny_model_dir, small_snapshot, tmp_path) -> None:
    first = run_finetune(_config(tiny_model_dir, max_steps=3), small_snapshot, tmp_path)
    events: list[dict] = []

    second = run_finetune(
        _config(tiny_model_dir, max_steps=3), small_snapshot, tmp_path, resume=True, on_progress=events.append
    )

    assert second == first
    assert second["train_metrics"]["global_step"] == 3
    assert events == []


def test_resume_without_checkpoint_starts_fresh(tiny_model_dir, small_snapshot, tmp_path) -> None:
    result = run_finetune(_config(tiny_model_dir, max_steps=2), small_snapshot, tmp_path, resume=True)

    assert result["resumed_from"] is None
    assert result["train_metrics"]["global_step"] == 2


def test_existing_checkpoints_need_resume(tiny_model_dir, small_snapshot, tmp_path) -> None:
    run_finetune(_config(tiny_model_dir, max_steps=2), small_snapshot, tmp_path)

    with pytest.raises(TrainingError, match="resume=True"):
        run_finetune(_config(tiny_model_dir, max_steps=2), small_snapshot, tmp_path)


def test_incomplete_checkpoint_skipped(tmp_path) -> None:
    complete = tmp_path / "checkpoint-2"
    complete.mkdir()
    (complete / "trainer_state.json").write_text("{}", encoding="utf-8")
    (tmp_path / "checkpoint-10").mkdir()
    (tmp_path / "checkpoint-notes").mkdir()

    assert find_last_checkpoint(tmp_path) == complete
    assert find_last_checkpoint(tmp_path / "missing") is None


def test_packing_and_full_finetune_save_model(tiny_model_dir, small_snapshot, tmp_path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = run_finetune(
        _config(tiny_model_dir, use_lora=False, packing=True, max_steps=2, learning_rate=1e-3),
        small_snapshot,
        tmp_path,
    )
    tokenizer = AutoTokenizer.from_pretrained(result["model_path"])
    tuned = AutoModelForCausalLM.from_pretrained(result["model_path"])
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)

    assert result["adapter_path"] is None
    assert result["trainable_parameters"] == result["total_parameters"]
    # 24 short conversations fit in far fewer packed rows of 128 tokens.
    assert result["train_rows"] < result["data_report"]["kept"]
    assert not _logits(tuned, tokenizer, "Hello").allclose(_logits(base, tokenizer, "Hello"))


def test_invalid_config_raises_before_loading(small_snapshot, tmp_path) -> None:
    with pytest.raises(ConfigError, match="lora_r"):
        run_finetune({"base_model": "does-not-matter", "lora_r": 0}, small_snapshot, tmp_path)


def test_missing_train_file_raises(tiny_model_dir, tmp_path) -> None:
    with pytest.raises(TrainingDataError, match="train.messages.jsonl"):
        run_finetune(_config(tiny_model_dir), tmp_path / "empty-snapshot", tmp_path / "output")


def test_snapshot_without_usable_rows_raises(tiny_model_dir, tmp_path, jsonl_writer) -> None:
    snapshot = tmp_path / "snapshot"
    jsonl_writer(snapshot / "train.messages.jsonl", [{"messages": [{"role": "user", "content": "Hi"}]}])

    with pytest.raises(TrainingDataError, match="no usable example"):
        run_finetune(_config(tiny_model_dir), snapshot, tmp_path / "output")


@pytest.fixture
def restore_logging():
    """Undo the stderr logging that main() sets up, because capsys closes that stream after the test."""
    import structlog

    yield
    structlog.reset_defaults()


def test_command_line_prints_result(tiny_model_dir, small_snapshot, tmp_path, capsys, restore_logging) -> None:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(_config(tiny_model_dir, max_steps=1)), encoding="utf-8")

    exit_code = main(["--config", str(config_path), "--snapshot", str(small_snapshot), "--output", str(tmp_path / "out")])

    assert exit_code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "completed"
    assert result["train_metrics"]["global_step"] == 1


def test_command_line_reports_invalid_config(tmp_path, small_snapshot, capsys, restore_logging) -> None:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps({"base_model": "m", "max_length": 1}), encoding="utf-8")

    exit_code = main(["--config", str(config_path), "--snapshot", str(small_snapshot), "--output", str(tmp_path / "out")])

    assert exit_code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "max_length: must be at least 8" in captured.err
