"""Job parameters for fine-tuning, evaluation and suggestions.

The web process imports this module to validate parameters before a job is queued, so it imports
no ML framework. `parse_config` turns pydantic's errors into a `ConfigError` whose messages name the
field, the allowed range and the rejected value.
"""

from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.training.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)

_RANGE_ERROR_TYPES = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}

ModelReference = Annotated[str, Field(min_length=1, max_length=500)]


class _StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FineTuneConfig(_StrictModel):
    """Parameters of a fine-tuning run. The defaults train a LoRA adapter with TRL's SFTTrainer."""

    base_model: ModelReference = Field(description="Hugging Face model id or local directory.")
    use_lora: bool = Field(True, description="Train a LoRA adapter; False trains all weights.")
    lora_r: int = Field(16, ge=1, le=1024, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, le=4096, description="LoRA scaling numerator (scale = alpha / r).")
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    lora_target_modules: Literal["all-linear"] | list[Annotated[str, Field(min_length=1)]] = Field(
        "all-linear",
        description='"all-linear" or module names such as ["q_proj", "v_proj"].',
    )
    learning_rate: float = Field(2e-4, gt=0.0, le=1.0)
    lr_scheduler_type: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_steps: int = Field(0, ge=0, le=1_000_000)
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    num_train_epochs: float = Field(1.0, gt=0.0, le=1000.0)
    max_steps: int | None = Field(None, ge=1, le=10_000_000, description="Overrides num_train_epochs when set.")
    per_device_train_batch_size: int = Field(4, ge=1, le=1024)
    gradient_accumulation_steps: int = Field(1, ge=1, le=1024)
    max_length: int = Field(1024, ge=8, le=131_072, description="Maximum tokens per example (or per packed row).")
    # NOTE: TRL packs into padding-free batches, which join a whole batch into one sequence. Without
    # FlashAttention (on a CPU, or with sdpa) attention then spans the whole batch: on a 2-core CPU,
    # bench/train_tiny.py measured about half the tokens/s of unpacked training at batch 8 x 512.
    packing: bool = Field(False, description="Pack several examples into each row of max_length tokens.")
    seed: int = Field(42, ge=0, le=2**32 - 1)
    save_steps: int = Field(100, ge=1, le=10_000_000, description="Optimizer steps between checkpoints.")
    save_total_limit: int | None = Field(3, ge=1, le=1000, description="Checkpoints kept; None keeps all.")
    logging_steps: int = Field(10, ge=1, le=10_000_000, description="Optimizer steps between progress reports.")
    gradient_checkpointing: bool | None = Field(
        None,
        description="None turns it on for models of at least 1e9 parameters only, because it slows small models.",
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description='"auto" is bf16 on a CUDA GPU that supports it, else fp32.',
    )
    chat_template: str | None = Field(
        None,
        min_length=1,
        description="Jinja chat template that replaces the tokenizer's own, with {% generation %} markers.",
    )

    @field_validator("base_model")
    @classmethod
    def _reject_blank_model(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a Hugging Face model id or a local directory, not blank text")
        return value

    @field_validator("lora_target_modules")
    @classmethod
    def _reject_empty_module_list(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError('must be "all-linear" or a non-empty list of module names')
        return value


class EvaluateConfig(_StrictModel):
    """Parameters of an evaluation run on a snapshot's validation split."""

    max_new_tokens: int = Field(128, ge=1, le=4096, description="Maximum tokens generated per response.")
    max_examples: int = Field(200, ge=1, le=100_000, description="Validation examples that get a generated response.")
    batch_size: int = Field(8, ge=1, le=512)
    max_length: int = Field(1024, ge=8, le=131_072, description="Maximum tokens per example for the loss.")
    sample_count: int = Field(5, ge=0, le=100, description="Generated responses kept in the result for display.")


class SuggestConfig(_StrictModel):
    """Parameters of a suggestion job that drafts responses for unlabeled items.

    The API key of an OpenAI-compatible server is not a parameter: the worker passes it from its
    settings, so that it is never stored with the job.
    """

    backend: Literal["local", "openai_compatible"] = "local"
    model: ModelReference = Field(description="Model id or directory (local), or the server's model name.")
    adapter_path: str | None = Field(None, min_length=1, description="LoRA adapter directory (local only).")
    base_url: str | None = Field(
        None,
        min_length=1,
        max_length=2000,
        description="Server URL such as http://127.0.0.1:8000/v1 (openai_compatible only).",
    )
    max_new_tokens: int = Field(256, ge=1, le=4096)
    batch_size: int = Field(8, ge=1, le=512, description="Conversations generated together (local only).")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 is greedy decoding.")
    timeout_s: float = Field(60.0, gt=0.0, le=3600.0, description="Timeout of one HTTP request in seconds.")

    @field_validator("base_url")
    @classmethod
    def _require_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL with a host, such as http://127.0.0.1:8000/v1")
        return value

    @model_validator(mode="after")
    def _check_backend_fields(self) -> "SuggestConfig":
        if self.backend == "openai_compatible" and self.base_url is None:
            raise ValueError("base_url is required when backend is openai_compatible")
        if self.backend == "openai_compatible" and self.adapter_path is not None:
            raise ValueError("adapter_path applies to the local backend only; remove it or use backend local")
        if self.backend == "local" and self.base_url is not None:
            raise ValueError("base_url applies to the openai_compatible backend only; remove it or change backend")
        return self


def parse_config(config_class: type[ModelT], data: Any) -> ModelT:
    """Validate `data` as `config_class` and raise `ConfigError` with one message per invalid field."""
    if isinstance(data, config_class):
        return data
    try:
        return config_class.model_validate(data)
    except ValidationError as exc:
        errors = [_describe_error(config_class, error) for error in exc.errors(include_url=False)]
        raise ConfigError(config_class.__name__, errors) from exc


def _describe_error(config_class: type[BaseModel], error: Any) -> dict[str, str]:
    location = [str(part) for part in error["loc"]]
    field_name = location[0] if location else "(config)"
    path = ".".join(location) if location else "(config)"

    if error["type"] == "extra_forbidden":
        allowed = ", ".join(config_class.model_fields)
        return {"field": path, "message": f"unknown field; allowed fields are {allowed}"}

    message = error["msg"].removeprefix("Value error, ")
    allowed_range = _describe_range(config_class, field_name)
    if error["type"] in _RANGE_ERROR_TYPES and allowed_range:
        message = f"must be {allowed_range}"
    if location and error["type"] != "missing":
        message = f"{message} (got {error['input']!r})"
    return {"field": path, "message": message}


def _describe_range(config_class: type[BaseModel], field_name: str) -> str:
    field = config_class.model_fields.get(field_name)
    if field is None:
        return ""
    bounds = []
    for constraint in field.metadata:
        if isinstance(constraint, annotated_types.Ge):
            bounds.append(f"at least {constraint.ge}")
        elif isinstance(constraint, annotated_types.Gt):
            bounds.append(f"greater than {constraint.gt}")
        elif isinstance(constraint, annotated_types.Le):
            bounds.append(f"at most {constraint.le}")
        elif isinstance(constraint, annotated_types.Lt):
            bounds.append(f"less than {constraint.lt}")
    return " and ".join(bounds)
