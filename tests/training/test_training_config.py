import pytest

from app.training.config import EvaluateConfig, FineTuneConfig, SuggestConfig, parse_config
from app.training.errors import ConfigError

pytestmark = [pytest.mark.training, pytest.mark.xdist_group("training")]


def test_finetune_config_defaults() -> None:
    config = parse_config(FineTuneConfig, {"base_model": "Qwen/Qwen2.5-0.5B"})

    assert config.use_lora is True
    assert config.lora_target_modules == "all-linear"
    assert config.max_steps is None
    assert config.gradient_checkpointing is None


def test_finetune_config_error_names_field_and_range() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(FineTuneConfig, {"base_model": "m", "lora_r": 0, "learning_rate": 2.0})

    errors = {error["field"]: error["message"] for error in caught.value.errors}
    assert errors["lora_r"] == "must be at least 1 and at most 1024 (got 0)"
    assert errors["learning_rate"] == "must be greater than 0.0 and at most 1.0 (got 2.0)"
    assert "lora_r: must be at least 1 and at most 1024" in str(caught.value)


def test_finetune_config_unknown_and_missing_fields() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(FineTuneConfig, {"lora_rank": 8})

    errors = {error["field"]: error["message"] for error in caught.value.errors}
    assert errors["base_model"] == "Field required"
    assert errors["lora_rank"].startswith("unknown field; allowed fields are base_model, use_lora, lora_r")


def test_finetune_config_rejects_blank_values() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(FineTuneConfig, {"base_model": "  ", "lora_target_modules": []})

    fields = [error["field"] for error in caught.value.errors]
    assert "base_model" in fields
    assert "lora_target_modules" in fields


def test_finetune_config_accepts_module_list() -> None:
    config = parse_config(FineTuneConfig, {"base_model": "m", "lora_target_modules": ["q_proj", "v_proj"]})

    assert config.lora_target_modules == ["q_proj", "v_proj"]


def test_evaluate_config_range() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(EvaluateConfig, {"max_new_tokens": 0})

    assert caught.value.errors == [{"field": "max_new_tokens", "message": "must be at least 1 and at most 4096 (got 0)"}]


def test_suggest_config_requires_base_url_for_server() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(SuggestConfig, {"model": "m", "backend": "openai_compatible"})

    assert "base_url is required" in str(caught.value)


def test_suggest_config_rejects_non_http_url() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(SuggestConfig, {"model": "m", "backend": "openai_compatible", "base_url": "file:///etc/passwd"})

    assert caught.value.errors[0]["field"] == "base_url"
