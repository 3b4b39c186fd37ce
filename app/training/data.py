"""Reading a snapshot's conversations and tokenizing them for supervised fine-tuning.

Every example that reaches the trainer obeys three rules, whatever the chat template does:

- It starts with exactly one BOS token when the tokenizer defines one. A template that omits
  `{{ bos_token }}` gets one prepended, and repeated leading BOS tokens are collapsed into one.
- Each assistant response ends with exactly one EOS token inside the loss mask. An EOS that the
  template places just outside the `{% generation %}` markers joins the mask, a missing one is
  inserted, and repeats are removed.
- Only assistant tokens carry labels. System, user and tool tokens, and the template's role
  headers, are labelled -100.

Roles other than system, user and assistant are mapped before rendering: `function_call` becomes
an assistant turn (the model wrote the call, so it is trained) and `observation` and `tool` become
user turns (their text is input, so it is masked). Any other role makes the row invalid.

Rows that cannot be trained are left out and listed in the report, never dropped silently. These
are invalid rows, rows whose last message is not an assistant turn with text, and rows whose final
response would start at or after `max_length` tokens. Rows cut at `max_length` that keep part of
the final response are trained and counted as truncated. Their final response then has no EOS.

This module imports no ML framework itself: callers pass in a loaded tokenizer.
"""

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from app.training.errors import ChatTemplateError, TrainingDataError

TRAIN_FILE = "train.messages.jsonl"
VALIDATION_FILE = "validation.messages.jsonl"

ROLE_MAPPING = {
    "system": "system",
    "user": "user",
    "assistant": "assistant",
    "function_call": "assistant",
    "observation": "user",
    "tool": "user",
}

_GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")


@dataclass(frozen=True)
class Conversation:
    """One valid row of a snapshot file, with roles already mapped."""

    index: int
    line: int
    messages: list[dict[str, str]]
    original_roles: tuple[str, ...]

    @property
    def prompt(self) -> list[dict[str, str]]:
        """Messages before the final assistant response."""
        return self.messages[:-1]

    @property
    def response(self) -> str:
        """Text of the final assistant response."""
        return self.messages[-1]["content"]


@dataclass(frozen=True)
class TokenizedExample:
    """Token ids and labels of one conversation, ready for the trainer."""

    index: int
    input_ids: list[int]
    labels: list[int]


@dataclass
class PreparedSplit:
    """Examples of one snapshot file that can be trained on, the conversations they came from, and the report."""

    examples: list[TokenizedExample]
    conversations: list[Conversation]
    report: dict[str, Any] = field(default_factory=dict)


def snapshot_file(snapshot_dir: str | Path, name: str) -> Path:
    """Return the path of `name` inside `snapshot_dir`, raising TrainingDataError when it does not exist."""
    path = Path(snapshot_dir) / name
    if not path.is_file():
        raise TrainingDataError(f"snapshot file not found: {path}; a snapshot directory must contain {name}")
    return path


def read_conversations(path: str | Path) -> tuple[list[Conversation], list[dict[str, Any]]]:
    """Read a `*.messages.jsonl` file and return its valid conversations and its rejected rows.

    Each non-blank line is one row, and `index` counts rows from 0. A rejected row is a dict with
    `index`, `line` (1-based), `reason` and `kind`: "invalid" for a row that does not parse or has an
    unknown role, "empty_response" for one whose last message is not an assistant turn with text.
    """
    conversations: list[Conversation] = []
    rejected: list[dict[str, Any]] = []
    for index, line_number, line in _iter_rows(Path(path)):
        try:
            messages, original_roles = _parse_messages(line)
        except _RowError as exc:
            rejected.append({"index": index, "line": line_number, "kind": exc.kind, "reason": str(exc)})
            continue
        conversation = Conversation(index=index, line=line_number, messages=messages, original_roles=original_roles)
        conversations.append(conversation)
    return conversations, rejected


class _RowError(ValueError):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


def _iter_rows(path: Path) -> Iterator[tuple[int, int, str]]:
    index = 0
    with path.open(encoding="utf-8-sig") as file:
        for line_number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            yield index, line_number, line
            index += 1


def _parse_messages(line: str) -> tuple[list[dict[str, str]], tuple[str, ...]]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _RowError("invalid", f"not valid JSON: {exc.msg} at column {exc.colno}") from exc
    if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
        raise _RowError("invalid", 'expected an object with a "messages" list')

    messages = []
    original_roles = []
    for position, message in enumerate(record["messages"]):
        if not isinstance(message, dict):
            raise _RowError("invalid", f"message {position} is not an object")
        role = message.get("role")
        if role not in ROLE_MAPPING:
            allowed = ", ".join(ROLE_MAPPING)
            raise _RowError("invalid", f"message {position} has unknown role {role!r}; expected one of {allowed}")
        content = message.get("content")
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise _RowError("invalid", f"message {position} has content of type {type(content).__name__}, not text")
        messages.append({"role": ROLE_MAPPING[role], "content": content})
        original_roles.append(role)

    if not messages or messages[-1]["role"] != "assistant":
        raise _RowError("empty_response", "the last message is not an assistant response")
    if not messages[-1]["content"].strip():
        raise _RowError("empty_response", "the assistant response is empty")
    return messages, tuple(original_roles)


def has_generation_markers(chat_template: str) -> bool:
    """Return whether a Jinja chat template marks assistant text with {% generation %}."""
    return _GENERATION_TAG.search(chat_template) is not None


def resolve_chat_template(tokenizer: Any, override: str | None = None, *, require_markers: bool = True) -> str:
    """Return the chat template to use with `tokenizer`, which is left unchanged.

    `override` replaces the tokenizer's own template. When `require_markers` is set, a template
    without {% generation %} markers is swapped for TRL's training version of it, which TRL ships
    for common families (Llama 3, Qwen 2.5 and 3, Gemma, Phi-3 and others). Raises
    ChatTemplateError when there is no template, or no training version of one without markers.
    """
    template = override if override is not None else tokenizer.chat_template
    if isinstance(template, dict):
        template = template.get("default")
    if not template:
        raise ChatTemplateError(
            "the tokenizer has no chat template; set chat_template in the job parameters to a Jinja template "
            "with {% generation %} and {% endgeneration %} around each assistant response and its EOS token"
        )
    if not require_markers or has_generation_markers(template):
        return template

    from trl.chat_template_utils import get_training_chat_template

    # TRL reads the template from the tokenizer, so the candidate is set there only for this call.
    own_template = tokenizer.chat_template
    tokenizer.chat_template = template
    try:
        training_template = get_training_chat_template(tokenizer)
    except ValueError as exc:
        raise ChatTemplateError(
            "the chat template has no {% generation %} markers and TRL has no training version of it; set "
            "chat_template in the job parameters to a copy with {% generation %} and {% endgeneration %} around "
            "each assistant response and its EOS token"
        ) from exc
    finally:
        tokenizer.chat_template = own_template
    return training_template if training_template is not None else template


class ConversationEncoder:
    """Turns conversations into token ids and labels with the BOS, EOS and masking rules of this module.

    An encoder built with `for_training=False` only encodes prompts, so its chat template needs no
    {% generation %} markers.
    """

    def __init__(self, tokenizer: Any, chat_template: str | None = None, *, for_training: bool = True) -> None:
        if tokenizer.eos_token_id is None:
            raise ChatTemplateError("the tokenizer has no EOS token, so responses cannot be taught to stop")
        self.tokenizer = tokenizer
        self.chat_template = resolve_chat_template(tokenizer, chat_template, require_markers=for_training)
        self.bos_token_id: int | None = tokenizer.bos_token_id
        self.eos_token_id: int = tokenizer.eos_token_id
        self.counters = {"bos_added": 0, "bos_removed": 0, "eos_added": 0, "eos_moved_into_mask": 0, "eos_removed": 0}

    def encode_training(self, messages: Sequence[dict[str, str]]) -> tuple[list[int], list[int], int]:
        """Return input ids, labels and the position where the final response starts.

        Raises ValueError when the chat template fails to render or marks no assistant token.
        """
        rendered = self.tokenizer.apply_chat_template(
            list(messages),
            chat_template=self.chat_template,
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
        )
        input_ids = list(rendered["input_ids"])
        mask = list(rendered["assistant_masks"])
        if 1 not in mask:
            raise ValueError("the chat template marked no assistant token with {% generation %}")

        self._normalize_bos(input_ids, mask)
        spans = self._end_responses_with_eos(input_ids, mask)
        labels = [token if keep else -100 for token, keep in zip(input_ids, mask, strict=True)]
        return input_ids, labels, spans[-1][0]

    def encode_prompt(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """Return the ids of a prompt followed by the assistant header, with exactly one leading BOS."""
        rendered = self.tokenizer.apply_chat_template(
            list(messages),
            chat_template=self.chat_template,
            tokenize=True,
            return_dict=True,
            add_generation_prompt=True,
        )
        input_ids = list(rendered["input_ids"])
        self._normalize_bos(input_ids, [0] * len(input_ids))
        return input_ids

    def _normalize_bos(self, input_ids: list[int], mask: list[int]) -> None:
        if self.bos_token_id is None:
            return
        leading = 0
        while leading < len(input_ids) and input_ids[leading] == self.bos_token_id:
            leading += 1
        if leading == 1:
            return
        if leading == 0:
            input_ids.insert(0, self.bos_token_id)
            mask.insert(0, 0)
            self.counters["bos_added"] += 1
            return
        del input_ids[1:leading]
        del mask[1:leading]
        self.counters["bos_removed"] += leading - 1

    def _end_responses_with_eos(self, input_ids: list[int], mask: list[int]) -> list[tuple[int, int]]:
        eos = self.eos_token_id
        spans = _mask_spans(mask)
        # Work from the last span back, so that inserting or deleting tokens keeps earlier positions valid.
        for start, end in reversed(spans):
            while end - start >= 2 and input_ids[end - 1] == eos and input_ids[end - 2] == eos:
                del input_ids[end - 1]
                del mask[end - 1]
                end -= 1
                self.counters["eos_removed"] += 1
            if input_ids[end - 1] != eos:
                if end < len(input_ids) and input_ids[end] == eos:
                    mask[end] = 1
                    self.counters["eos_moved_into_mask"] += 1
                else:
                    input_ids.insert(end, eos)
                    mask.insert(end, 1)
                    self.counters["eos_added"] += 1
                end += 1
            while end < len(input_ids) and input_ids[end] == eos and mask[end] == 0:
                del input_ids[end]
                del mask[end]
                self.counters["eos_removed"] += 1
        # Edits to a span shift every later span, so the spans are found again once all are fixed.
        return _mask_spans(mask)


def _mask_spans(mask: Sequence[int]) -> list[tuple[int, int]]:
    spans = []
    start = None
    for position, value in enumerate(mask):
        if value and start is None:
            start = position
        elif not value and start is not None:
            spans.append((start, position))
            start = None
    if start is not None:
        spans.append((start, len(mask)))
    return spans


def prepare_split(
    encoder: ConversationEncoder,
    path: str | Path,
    max_length: int,
) -> PreparedSplit:
    """Read and tokenize one snapshot file and report what was truncated or left out, before any training.

    The report is a plain dict, ready to store as JSON. Row indices count from 0.

    - `rows`, `kept`, `left_out`, `max_length`, `file`: counts and settings.
    - `truncated`: rows cut at max_length but kept (`count`, `indices`).
    - `response_truncated_away`: rows left out because the final response starts at or after
      max_length (`count`, `indices`).
    - `empty_response`: rows left out because the last message is not an assistant turn with text.
    - `invalid`: rows left out for another reason, each with `index`, `line` and `reason`.
    - `roles_mapped`: how many messages of each mapped role (function_call, observation, tool).
    - `special_tokens_fixed`: how many BOS and EOS tokens were added, removed or moved into the mask.
    - `tokens`: total and trained tokens of the kept rows, and the max and mean row length.
    """
    path = Path(path)
    conversations, rejected = read_conversations(path)
    rows = len(conversations) + len(rejected)
    counters_before = dict(encoder.counters)

    examples: list[TokenizedExample] = []
    kept_conversations: list[Conversation] = []
    truncated: list[int] = []
    cut_away: list[int] = []
    for conversation in conversations:
        try:
            input_ids, labels, response_start = encoder.encode_training(conversation.messages)
        except (ValueError, TypeError, jinja2.TemplateError) as exc:
            reason = f"chat template failed: {exc}"
            rejected.append({"index": conversation.index, "line": conversation.line, "kind": "invalid", "reason": reason})
            continue
        if response_start >= max_length:
            cut_away.append(conversation.index)
            continue
        if len(input_ids) > max_length:
            truncated.append(conversation.index)
            input_ids = input_ids[:max_length]
            labels = labels[:max_length]
        examples.append(TokenizedExample(index=conversation.index, input_ids=input_ids, labels=labels))
        kept_conversations.append(conversation)

    counters = {name: encoder.counters[name] - counters_before[name] for name in encoder.counters}
    report = _build_report(path, rows, conversations, rejected, examples, truncated, cut_away, max_length, counters)
    return PreparedSplit(examples=examples, conversations=kept_conversations, report=report)


def _build_report(
    path: Path,
    rows: int,
    conversations: list[Conversation],
    rejected: list[dict[str, Any]],
    examples: list[TokenizedExample],
    truncated: list[int],
    cut_away: list[int],
    max_length: int,
    counters: dict[str, int],
) -> dict[str, Any]:
    invalid = sorted((row for row in rejected if row["kind"] == "invalid"), key=lambda row: row["index"])
    empty = sorted(row["index"] for row in rejected if row["kind"] == "empty_response")
    roles_mapped: dict[str, int] = {}
    for conversation in conversations:
        for original_role in conversation.original_roles:
            if ROLE_MAPPING[original_role] != original_role:
                roles_mapped[original_role] = roles_mapped.get(original_role, 0) + 1
    lengths = [len(example.input_ids) for example in examples]
    trained_tokens = sum(sum(1 for label in example.labels if label != -100) for example in examples)

    return {
        "file": path.name,
        "rows": rows,
        "kept": len(examples),
        "left_out": len(invalid) + len(empty) + len(cut_away),
        "max_length": max_length,
        "truncated": {"count": len(truncated), "indices": truncated},
        "response_truncated_away": {"count": len(cut_away), "indices": cut_away},
        "empty_response": {"count": len(empty), "indices": empty},
        "invalid": {
            "count": len(invalid),
            "rows": [{"index": row["index"], "line": row["line"], "reason": row["reason"]} for row in invalid],
        },
        "roles_mapped": roles_mapped,
        "special_tokens_fixed": counters,
        "tokens": {
            "total": sum(lengths),
            "trained": trained_tokens,
            "max_per_example": max(lengths, default=0),
            "mean_per_example": (sum(lengths) / len(lengths)) if lengths else 0.0,
        },
    }


def require_examples(split: PreparedSplit) -> None:
    """Raise TrainingDataError, with the report's counts, when a split has no example left to use."""
    if split.examples:
        return
    report = split.report
    reasons = [row["reason"] for row in report["invalid"]["rows"][:3]]
    raise TrainingDataError(
        f"{report['file']} has no usable example: {report['rows']} rows, "
        f"{report['empty_response']['count']} without an assistant response, "
        f"{report['response_truncated_away']['count']} whose response starts beyond max_length "
        f"{report['max_length']}, {report['invalid']['count']} invalid"
        + (f" (first reasons: {'; '.join(reasons)})" if reasons else "")
    )
