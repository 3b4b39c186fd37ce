"""Read preference records: a prompt with a chosen and a rejected final assistant turn.

Accepted forms, all giving ImportRecords with `chosen` and `rejected` and no `response`:

- `prompt` (string or message list), or Alpaca `instruction`/`input`, or ShareGPT
  `conversations`, followed by `chosen`/`rejected` as strings, as single message objects,
  or as message lists;
- implicit prompts: `chosen`/`rejected` (or `chosen_messages`/`rejected_messages`) as whole
  conversations that share every turn before the final assistant turn;
- Anthropic HH transcripts: `chosen`/`rejected` strings of "\\n\\nHuman: ...\\n\\nAssistant: ...";
- OpenAssistant message trees, read along the best-ranked replies.
"""

import re
from typing import Any

from app.items.importing.errors import RowProblem
from app.items.importing.fields import (
    describe_type,
    extra_fields,
    join_instruction,
    optional_text,
    required_text,
    take_external_id,
)
from app.items.importing.messages import read_message, read_messages, read_tools
from app.items.records import ImportRecord, Message

_PREFERENCE_FIELDS = frozenset(
    {
        "prompt",
        "conversations",
        "instruction",
        "input",
        "system",
        "tools",
        "chosen",
        "rejected",
        "chosen_messages",
        "rejected_messages",
    }
)


def _final_turn(value: Any, field: str) -> tuple[list[Message] | None, str]:
    """Return the context a chosen/rejected value carries (None for a bare turn) and its final text."""
    if isinstance(value, str):
        return None, value
    if isinstance(value, dict):
        messages = read_message(value, field)
    elif isinstance(value, list):
        messages = read_messages(value, field)
    else:
        raise RowProblem(
            f"Field '{field}' must be a string, a message or a list of messages, got {describe_type(value)}."
        )
    if not messages or messages[-1].role != "assistant":
        raise RowProblem(f"Field '{field}' must end with an assistant message.")
    context = messages[:-1]
    return (context or None), messages[-1].content


def _read_prompt(record: dict[str, Any]) -> list[Message] | None:
    if "conversations" in record:
        return read_messages(record["conversations"], "conversations")
    if "instruction" in record:
        instruction = required_text(record, "instruction")
        return [Message("user", join_instruction(instruction, optional_text(record, "input")))]
    prompt = record.get("prompt")
    if isinstance(prompt, str):
        return [Message("user", prompt)]
    if isinstance(prompt, list):
        return read_messages(prompt, "prompt")
    if prompt is not None:
        raise RowProblem(f"Field 'prompt' must be a string or a list of messages, got {describe_type(prompt)}.")
    return None


def read_preference(record: dict[str, Any], number: int) -> list[ImportRecord]:
    """Read one preference record in any of the forms listed in the module docstring."""
    chosen_key = "chosen" if "chosen" in record else "chosen_messages"
    rejected_key = "rejected" if "rejected" in record else "rejected_messages"
    if chosen_key not in record or rejected_key not in record:
        raise RowProblem("A preference record needs both 'chosen' and 'rejected' fields.")
    chosen_context, chosen = _final_turn(record[chosen_key], chosen_key)
    rejected_context, rejected = _final_turn(record[rejected_key], rejected_key)

    if chosen_context is not None or rejected_context is not None:
        if chosen_context != rejected_context:
            raise RowProblem(
                f"Fields '{chosen_key}' and '{rejected_key}' must be the same conversation up to their "
                "final assistant message, but they differ earlier."
            )
        messages = chosen_context
    else:
        messages = _read_prompt(record)
    if not messages:
        raise RowProblem("The preference record has no prompt: add 'prompt', 'conversations' or 'instruction'.")
    system = optional_text(record, "system")
    if system:
        messages = [Message("system", system), *messages]

    extra = extra_fields(record, _PREFERENCE_FIELDS)
    if isinstance(record[chosen_key], list):
        # ultrafeedback_binarized repeats the chosen conversation in `messages`.
        extra.pop("messages", None)
    return [
        ImportRecord(
            record=number,
            messages=messages,
            response=None,
            chosen=chosen,
            rejected=rejected,
            external_id=take_external_id(extra),
            tools=read_tools(record),
            metadata=extra,
        )
    ]


_HH_TURN = re.compile(r"\n\n(Human|Assistant): ?")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


def looks_like_hh_transcript(value: Any) -> bool:
    """Return whether `value` is an Anthropic HH transcript string."""
    return isinstance(value, str) and value.startswith("\n\nHuman:")


def _hh_turns(transcript: str, field: str) -> list[Message]:
    parts = _HH_TURN.split(transcript)
    if parts[0]:
        raise RowProblem(f"Field '{field}' must start with '\\n\\nHuman: '.")
    return [Message(_HH_ROLES[parts[index]], parts[index + 1]) for index in range(1, len(parts), 2)]


def read_hh_transcripts(record: dict[str, Any], number: int) -> list[ImportRecord]:
    """Read Anthropic HH `chosen`/`rejected` transcripts that differ only in the last Assistant turn."""
    chosen_turns = _hh_turns(required_text(record, "chosen"), "chosen")
    rejected_turns = _hh_turns(required_text(record, "rejected"), "rejected")
    shared = 0
    while shared < min(len(chosen_turns), len(rejected_turns)) - 1 and chosen_turns[shared] == rejected_turns[shared]:
        shared += 1
    prompt = chosen_turns[:shared]
    chosen_rest, rejected_rest = chosen_turns[shared:], rejected_turns[shared:]
    if (
        len(chosen_rest) != 1
        or len(rejected_rest) != 1
        or chosen_rest[0].role != "assistant"
        or rejected_rest[0].role != "assistant"
        or not prompt
    ):
        raise RowProblem(
            "Fields 'chosen' and 'rejected' must be the same Human/Assistant transcript except for "
            f"one final Assistant turn, but they differ at turn {shared + 1}."
        )
    extra = extra_fields(record, frozenset({"chosen", "rejected"}))
    return [
        ImportRecord(
            record=number,
            messages=prompt,
            response=None,
            chosen=chosen_rest[0].content,
            rejected=rejected_rest[0].content,
            external_id=take_external_id(extra),
            metadata=extra,
        )
    ]


def _rank_key(node: dict[str, Any]) -> tuple[int, int]:
    rank = node.get("rank")
    return (0, rank) if isinstance(rank, int) and not isinstance(rank, bool) else (1, 0)


def _live_replies(node: dict[str, Any], where: str) -> list[dict[str, Any]]:
    replies = node.get("replies") or []
    if not isinstance(replies, list):
        raise RowProblem(f"Field '{where}.replies' must be a list, got {describe_type(replies)}.")
    return [reply for reply in replies if isinstance(reply, dict) and not reply.get("deleted")]


def read_oasst_tree(record: dict[str, Any], number: int) -> list[ImportRecord]:
    """Read an OpenAssistant message tree along its best-ranked replies.

    The path follows the best-ranked reply at each turn and goes down a prompter reply
    only if that reply got an answer, so the path ends with an assistant turn whenever the
    root has one. Among the ranked replies to the last prompter turn, rank 0 becomes
    `chosen` and the worst rank `rejected`. With fewer than two ranked replies, the best
    reply becomes the response. Deleted messages are skipped.
    """
    root = record.get("prompt")
    if not isinstance(root, dict):
        raise RowProblem(f"Field 'prompt' must be a message tree object, got {describe_type(root)}.")
    path = [root]
    while True:
        node = path[-1]
        replies = _live_replies(node, "prompt")
        if node.get("role") == "assistant":
            replies = [reply for reply in replies if _live_replies(reply, "prompt")]
        if not replies:
            break
        path.append(min(replies, key=_rank_key))
    messages = [Message(_oasst_role(node.get("role"), "prompt"), required_text(node, "text")) for node in path]

    extra = extra_fields(record, frozenset({"prompt"}))
    if isinstance(root.get("lang"), str):
        extra["lang"] = root["lang"]
    external_id = take_external_id(extra)
    if len(path) == 1:
        return [ImportRecord(record=number, messages=messages, response=None, external_id=external_id, metadata=extra)]

    ranked = sorted(
        (reply for reply in _live_replies(path[-2], "prompt") if _rank_key(reply)[0] == 0),
        key=_rank_key,
    )
    if len(ranked) >= 2:
        return [
            ImportRecord(
                record=number,
                messages=messages[:-1],
                response=None,
                chosen=required_text(ranked[0], "text"),
                rejected=required_text(ranked[-1], "text"),
                external_id=external_id,
                metadata=extra,
            )
        ]
    return [
        ImportRecord(
            record=number,
            messages=messages[:-1],
            response=messages[-1].content,
            external_id=external_id,
            metadata=extra,
        )
    ]


def _oasst_role(role: Any, where: str) -> str:
    if role == "prompter":
        return "user"
    if role == "assistant":
        return "assistant"
    raise RowProblem(f"Field '{where}.role' must be 'prompter' or 'assistant', got {role!r}.")
