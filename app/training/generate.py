"""Generating assistant responses for prompts, with a local model or an OpenAI-compatible server.

A prompt is a conversation whose last message the model should answer. Roles are mapped as in
`app.training.data` (`function_call` to assistant, `observation` and `tool` to user) before the
chat template renders them.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import structlog

from app.training.config import SuggestConfig, parse_config
from app.training.data import ROLE_MAPPING, ConversationEncoder
from app.training.errors import GenerationError

logger = structlog.get_logger(__name__)

Message = dict[str, str]

# Characters of a server's error body kept in a GenerationError message.
_ERROR_BODY_CHARS = 300


def generate_responses(
    model_path: str | Path,
    adapter_path: str | Path | None,
    conversations: Sequence[Sequence[Message]],
    max_new_tokens: int,
    *,
    batch_size: int = 8,
    temperature: float = 0.0,
) -> list[str]:
    """Load a model (with its LoRA adapter when given) and return one generated response per conversation.

    Each conversation is rendered with the model's chat template and the generation prompt.
    Decoding is greedy when `temperature` is 0. Raises GenerationError for an unknown role.
    """
    from app.training.loading import disable_progress_bars, load_model_for_inference, load_tokenizer

    disable_progress_bars()
    tokenizer = load_tokenizer(model_path, adapter_path)
    encoder = ConversationEncoder(tokenizer, for_training=False)
    model = load_model_for_inference(model_path, adapter_path)
    outputs = generate_with_model(
        model,
        encoder,
        conversations,
        max_new_tokens,
        batch_size=batch_size,
        temperature=temperature,
    )
    return [output.text for output in outputs]


@dataclass(frozen=True)
class GeneratedText:
    """A generated response and whether the model ended it with an EOS token before the token limit."""

    text: str
    stopped_on_eos: bool


def generate_with_model(
    model: Any,
    encoder: ConversationEncoder,
    conversations: Sequence[Sequence[Message]],
    max_new_tokens: int,
    *,
    batch_size: int = 8,
    temperature: float = 0.0,
    on_batch: Callable[[int, int], None] | None = None,
) -> list[GeneratedText]:
    """Generate with an already loaded model, in batches of similar prompt length, keeping the input order.

    `on_batch(done, total)` is called after each batch. Prompts longer than the model's context
    minus `max_new_tokens` keep their BOS and their last tokens.
    """
    import torch
    from transformers import GenerationConfig

    tokenizer = encoder.tokenizer
    prompts = [
        _fit_prompt(encoder.encode_prompt(_map_roles(messages)), model, max_new_tokens, encoder)
        for messages in conversations
    ]
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else encoder.eos_token_id
    eos_token_ids = _eos_token_ids(model, encoder)
    generation_config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=temperature > 0,
        temperature=temperature if temperature > 0 else None,
        eos_token_id=eos_token_ids,
        pad_token_id=pad_token_id,
    )

    results: list[GeneratedText | None] = [None] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda position: len(prompts[position]))
    device = next(model.parameters()).device
    for batch_start in range(0, len(order), batch_size):
        positions = order[batch_start : batch_start + batch_size]
        input_ids, attention_mask = _left_pad([prompts[position] for position in positions], pad_token_id)
        with torch.inference_mode():
            generated = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                generation_config=generation_config,
            )
        new_tokens = generated[:, input_ids.shape[1] :].tolist()
        for position, tokens in zip(positions, new_tokens, strict=True):
            stopped = any(token in eos_token_ids for token in tokens)
            if stopped:
                tokens = tokens[: min(tokens.index(token) for token in eos_token_ids if token in tokens)]
            text = tokenizer.decode(tokens, skip_special_tokens=True).strip()
            results[position] = GeneratedText(text=text, stopped_on_eos=stopped)
        if on_batch is not None:
            on_batch(min(batch_start + batch_size, len(order)), len(order))

    return [result for result in results if result is not None]


def _map_roles(messages: Sequence[Message]) -> list[Message]:
    mapped = []
    for position, message in enumerate(messages):
        role = message.get("role")
        if role not in ROLE_MAPPING:
            allowed = ", ".join(ROLE_MAPPING)
            raise GenerationError(f"message {position} has unknown role {role!r}; expected one of {allowed}")
        mapped.append({"role": ROLE_MAPPING[role], "content": message.get("content") or ""})
    return mapped


def _fit_prompt(input_ids: list[int], model: Any, max_new_tokens: int, encoder: ConversationEncoder) -> list[int]:
    context = getattr(model.config, "max_position_embeddings", None)
    if context is None or len(input_ids) + max_new_tokens <= context:
        return input_ids
    keep = max(context - max_new_tokens, 1)
    if encoder.bos_token_id is not None and input_ids[0] == encoder.bos_token_id:
        return [encoder.bos_token_id, *input_ids[len(input_ids) - keep + 1 :]]
    return input_ids[-keep:]


def _eos_token_ids(model: Any, encoder: ConversationEncoder) -> list[int]:
    configured = model.generation_config.eos_token_id
    if configured is None:
        configured = []
    elif isinstance(configured, int):
        configured = [configured]
    return [encoder.eos_token_id, *(token for token in configured if token != encoder.eos_token_id)]


def _left_pad(sequences: list[list[int]], pad_token_id: int) -> tuple[Any, Any]:
    import torch

    width = max(len(sequence) for sequence in sequences)
    input_ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        input_ids[row, width - len(sequence) :] = torch.tensor(sequence, dtype=torch.long)
        attention_mask[row, width - len(sequence) :] = 1
    return input_ids, attention_mask


def chat_completions_url(base_url: str) -> str:
    """Return the chat completions URL of a server, accepting a base URL with or without the /v1 suffix."""
    url = base_url.rstrip("/")
    if not url.endswith("/v1"):
        url = f"{url}/v1"
    return f"{url}/chat/completions"


def generate_openai_compatible(
    base_url: str,
    model: str,
    conversations: Sequence[Sequence[Message]],
    api_key: str | None = None,
    timeout_s: float = 60.0,
    *,
    max_new_tokens: int | None = None,
    temperature: float = 0.0,
) -> list[str]:
    """Send each conversation to an OpenAI-compatible /v1/chat/completions endpoint and return the replies.

    Requests are sent one at a time, with `timeout_s` per request and no retry. Raises GenerationError naming the conversation when a request
    fails, times out, returns an error status or a reply without text.
    """
    url = chat_completions_url(base_url)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    responses = []
    with httpx.Client(timeout=timeout_s, headers=headers) as client:
        for position, messages in enumerate(conversations):
            payload: dict[str, Any] = {"model": model, "messages": _map_roles(messages), "temperature": temperature}
            if max_new_tokens is not None:
                payload["max_tokens"] = max_new_tokens
            responses.append(_request_completion(client, url, payload, position, timeout_s))
    return responses


def _request_completion(
    client: httpx.Client,
    url: str,
    payload: dict[str, Any],
    position: int,
    timeout_s: float,
) -> str:
    try:
        response = client.post(url, json=payload)
    except httpx.TimeoutException as exc:
        raise GenerationError(f"conversation {position}: {url} timed out after {timeout_s} s") from exc
    except httpx.HTTPError as exc:
        raise GenerationError(f"conversation {position}: request to {url} failed: {exc}") from exc

    if response.status_code >= 400:
        body = response.text[:_ERROR_BODY_CHARS]
        raise GenerationError(f"conversation {position}: {url} returned HTTP {response.status_code}: {body}")
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise GenerationError(
            f"conversation {position}: {url} returned a body without choices[0].message.content"
        ) from exc
    if not isinstance(content, str):
        raise GenerationError(f"conversation {position}: {url} returned no text content")
    return content


def generate_suggestions(
    config: SuggestConfig | dict[str, Any],
    conversations: Sequence[Sequence[Message]],
    api_key: str | None = None,
) -> list[str]:
    """Draft one response per conversation with the backend that a suggestion job's config names."""
    config = parse_config(SuggestConfig, config)
    logger.info("suggestions_started", backend=config.backend, model=config.model, count=len(conversations))
    if config.backend == "openai_compatible":
        assert config.base_url is not None  # checked by SuggestConfig
        return generate_openai_compatible(
            config.base_url,
            config.model,
            conversations,
            api_key=api_key,
            timeout_s=config.timeout_s,
            max_new_tokens=config.max_new_tokens,
            temperature=config.temperature,
        )
    return generate_responses(
        config.model,
        config.adapter_path,
        conversations,
        config.max_new_tokens,
        batch_size=config.batch_size,
        temperature=config.temperature,
    )
