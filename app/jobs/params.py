"""Job parameters: checked with the training config models when a job is created, and again by its handler.

Parameters are stored flat, as the API receives them:

- finetune: the fields of `FineTuneConfig` (base_model may be "tiny").
- evaluate: `run_id` (a fine-tune run, evaluated together with its base model) or `base_model`
  alone, plus the fields of `EvaluateConfig`.
- suggest: `source` ("run", "model" or "endpoint"), `run_id` or `model`, `limit` (pending items
  to draft for), plus the generation fields of `SuggestConfig`. The endpoint's URL is never a
  parameter: it comes from the SFTDESK_SUGGEST_ENDPOINT_URL setting that an admin sets.

Only pydantic is imported here, so the web process can validate without the ML stack.
"""

from dataclasses import dataclass
from typing import Any

from app.errors import InvalidInput
from app.training.config import EvaluateConfig, FineTuneConfig, SuggestConfig, parse_config
from app.training.errors import ConfigError

JOB_KINDS = ("finetune", "evaluate", "suggest")
SUGGEST_SOURCES = ("run", "model", "endpoint")
SUGGEST_GENERATION_FIELDS = ("max_new_tokens", "batch_size", "temperature", "timeout_s")
DEFAULT_SUGGEST_LIMIT = 50
MAX_SUGGEST_LIMIT = 10_000


@dataclass(frozen=True)
class EvaluateParams:
    run_id: int | None
    base_model: str | None
    config: EvaluateConfig

    def stored(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "base_model": self.base_model, **self.config.model_dump(mode="json")}


@dataclass(frozen=True)
class SuggestParams:
    source: str
    run_id: int | None
    model: str | None
    limit: int
    generation: dict[str, Any]

    def stored(self) -> dict[str, Any]:
        return {
            "source": self.source, "run_id": self.run_id, "model": self.model, "limit": self.limit,
            **self.generation,
        }


def _invalid(error: ConfigError) -> InvalidInput:
    return InvalidInput(str(error), problems=error.errors)


def _require_mapping(params: Any) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InvalidInput(f"invalid params {params!r}: send a JSON object")
    return dict(params)


def _optional_int(params: dict[str, Any], key: str) -> int | None:
    value = params.pop(key, None)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidInput(f"invalid {key} {value!r}: use a whole number")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"invalid {key} {value!r}: use a whole number") from None


def _optional_text(params: dict[str, Any], key: str) -> str | None:
    value = params.pop(key, None)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"invalid {key} {value!r}: use text")
    return value.strip() or None


def parse_finetune_params(params: Any) -> FineTuneConfig:
    try:
        return parse_config(FineTuneConfig, _require_mapping(params))
    except ConfigError as error:
        raise _invalid(error) from error


def parse_evaluate_params(params: Any) -> EvaluateParams:
    values = _require_mapping(params)
    run_id = _optional_int(values, "run_id")
    base_model = _optional_text(values, "base_model")
    if (run_id is None) == (base_model is None):
        raise InvalidInput(
            "evaluate needs exactly one of run_id (a fine-tune run, evaluated with its base model) "
            "or base_model (a base model alone)"
        )
    try:
        config = parse_config(EvaluateConfig, values)
    except ConfigError as error:
        raise _invalid(error) from error
    return EvaluateParams(run_id=run_id, base_model=base_model, config=config)


def parse_suggest_params(params: Any, *, endpoint_url: str | None) -> SuggestParams:
    values = _require_mapping(params)
    source = values.pop("source", None) or ("run" if values.get("run_id") not in (None, "") else "model")
    if source not in SUGGEST_SOURCES:
        raise InvalidInput(f"invalid source {source!r}: use one of {', '.join(SUGGEST_SOURCES)}")
    run_id = _optional_int(values, "run_id")
    model = _optional_text(values, "model")
    limit = _optional_int(values, "limit")
    limit = DEFAULT_SUGGEST_LIMIT if limit is None else limit
    if not 1 <= limit <= MAX_SUGGEST_LIMIT:
        raise InvalidInput(f"invalid limit {limit}: use 1 to {MAX_SUGGEST_LIMIT} items")

    unknown = sorted(set(values) - set(SUGGEST_GENERATION_FIELDS))
    if unknown:
        allowed = ", ".join(("source", "run_id", "model", "limit", *SUGGEST_GENERATION_FIELDS))
        raise InvalidInput(f"unknown suggest parameters {unknown}: allowed are {allowed}")

    if source == "run":
        if run_id is None or model is not None:
            raise InvalidInput("source 'run' needs run_id (a fine-tune run) and no model")
        config_input = {"backend": "local", "model": f"run {run_id}", **values}
    elif source == "model":
        if model is None or run_id is not None:
            raise InvalidInput("source 'model' needs model (a model id, a local directory or 'tiny') and no run_id")
        config_input = {"backend": "local", "model": model, **values}
    else:
        if endpoint_url is None:
            raise InvalidInput(
                "no suggestion endpoint is configured: an admin sets SFTDESK_SUGGEST_ENDPOINT_URL to an "
                "OpenAI-compatible server's base URL"
            )
        if model is None or run_id is not None:
            raise InvalidInput("source 'endpoint' needs model (the model name the server expects) and no run_id")
        config_input = {"backend": "openai_compatible", "base_url": endpoint_url, "model": model, **values}

    try:
        config = parse_config(SuggestConfig, config_input)
    except ConfigError as error:
        raise _invalid(error) from error
    generation = {name: getattr(config, name) for name in SUGGEST_GENERATION_FIELDS}
    return SuggestParams(source=source, run_id=run_id, model=model, limit=limit, generation=generation)


def parse_params(kind: str, params: Any, *, endpoint_url: str | None) -> dict[str, Any]:
    """Validate a job's parameters and return them with every default filled in, ready to store."""
    if kind == "finetune":
        return parse_finetune_params(params).model_dump(mode="json")
    if kind == "evaluate":
        return parse_evaluate_params(params).stored()
    if kind == "suggest":
        return parse_suggest_params(params, endpoint_url=endpoint_url).stored()
    raise InvalidInput(f"invalid job kind {kind!r}: use one of {', '.join(JOB_KINDS)}")
