"""Recognise the shape of a source record and convert it into ImportRecords.

Alpaca's `instruction` and `input` become one user message, joined by a blank line
("instruction\\n\\ninput"). An empty `input` adds nothing and an empty `output` gives
response None. Fields a shape does not use are kept as metadata, except the first id-like
field (`id`, `conversation_id`, ...), which becomes the external id.
"""

import re
from collections.abc import Callable
from typing import Any

from app.items.importing.errors import RowProblem
from app.items.importing.fields import (
    describe_type,
    extra_fields,
    first_present,
    join_instruction,
    optional_text,
    required_text,
    take_external_id,
)
from app.items.importing.messages import read_messages, read_tools, split_response
from app.items.importing.preference import (
    looks_like_hh_transcript,
    read_hh_transcripts,
    read_oasst_tree,
    read_preference,
)
from app.items.records import ImportRecord, Message

ShapeReader = Callable[[Any, int], list[ImportRecord]]

_QUESTION_FIELDS = ("question", "query", "ask")
_ANSWER_FIELDS = ("answer", "std_answer", "response", "output")
_COMPLETION_FIELDS = ("completion", "response")

_ALPACA_FIELDS = frozenset({"instruction", "input", "output", "system", "history"})
_SELF_INSTRUCT_FIELDS = frozenset({"instruction", "instances"})
_TEXT_FIELDS = frozenset({"text"})
_SHAREGPT_FIELDS = frozenset({"conversations", "system", "tools"})
_MESSAGES_FIELDS = frozenset({"messages", "system", "tools"})
_FIREFLY_FIELDS = frozenset({"conversation", "system"})
_MT_BENCH_FIELDS = frozenset({"turns"})
_MOSS_FIELDS = frozenset({"chat", "meta_instruction", "num_turns"})


def _conversation_record(
    record: dict[str, Any],
    number: int,
    messages: list[Message],
    field: str,
    consumed: frozenset[str],
) -> list[ImportRecord]:
    system = optional_text(record, "system")
    if system:
        messages = [Message("system", system), *messages]
    prompt, response = split_response(messages, field)
    extra = extra_fields(record, consumed)
    return [
        ImportRecord(
            record=number,
            messages=prompt,
            response=response,
            external_id=take_external_id(extra),
            tools=read_tools(record),
            metadata=extra,
        )
    ]


def _require_object(value: Any, shape: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RowProblem(f"The record is {describe_type(value)}, but the {shape} shape needs a JSON object.")
    return value


def _read_history(value: Any) -> list[Message]:
    if value is None or value == "" or value == []:
        return []
    if not isinstance(value, list):
        raise RowProblem(
            f"Field 'history' must be a list of [instruction, response] pairs, got {describe_type(value)}."
        )
    messages: list[Message] = []
    for index, pair in enumerate(value):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(text, str) for text in pair)):
            raise RowProblem(f"Field 'history[{index}]' must be a pair of strings [instruction, response].")
        messages += [Message("user", pair[0]), Message("assistant", pair[1])]
    return messages


def read_alpaca(value: Any, number: int) -> list[ImportRecord]:
    record = _require_object(value, "alpaca")
    instruction = required_text(record, "instruction")
    user_text = join_instruction(instruction, optional_text(record, "input"))
    if not user_text.strip():
        raise RowProblem("Fields 'instruction' and 'input' are both empty; the record has no prompt.")
    messages = [*_read_history(record.get("history")), Message("user", user_text)]
    system = optional_text(record, "system")
    if system:
        messages.insert(0, Message("system", system))
    output = optional_text(record, "output")
    extra = extra_fields(record, _ALPACA_FIELDS)
    return [
        ImportRecord(
            record=number,
            messages=messages,
            response=output or None,
            external_id=take_external_id(extra),
            metadata=extra,
        )
    ]


def read_self_instruct(value: Any, number: int) -> list[ImportRecord]:
    """Read a self-instruct task: one ImportRecord per entry of `instances`."""
    record = _require_object(value, "self_instruct")
    instruction = required_text(record, "instruction")
    instances = record.get("instances")
    if not isinstance(instances, list) or not instances:
        raise RowProblem("Field 'instances' must be a non-empty list of {input, output} objects.")
    extra = extra_fields(record, _SELF_INSTRUCT_FIELDS)
    task_id = take_external_id(extra)
    records = []
    for index, instance in enumerate(instances, start=1):
        if not isinstance(instance, dict):
            raise RowProblem(f"Field 'instances[{index - 1}]' must be an object, got {describe_type(instance)}.")
        try:
            extra_input = optional_text(instance, "input")
            output = optional_text(instance, "output")
        except RowProblem as exc:
            raise RowProblem(f"In instances[{index - 1}]: {exc.reason}") from None
        metadata = dict(extra)
        external_id = task_id
        if len(instances) > 1:
            metadata["instance"] = index
            external_id = f"{task_id}#{index}" if task_id is not None else None
        records.append(
            ImportRecord(
                record=number,
                messages=[Message("user", join_instruction(instruction, extra_input))],
                response=output or None,
                external_id=external_id,
                metadata=metadata,
            )
        )
    return records


def read_question_answer(value: Any, number: int) -> list[ImportRecord]:
    """Read {question, answer}-style records such as BELLE's {question, std_answer}."""
    record = _require_object(value, "question_answer")
    question_key = first_present(record, _QUESTION_FIELDS) or "question"
    answer_key = first_present(record, _ANSWER_FIELDS)
    question = required_text(record, question_key)
    answer = optional_text(record, answer_key) if answer_key else ""
    extra = extra_fields(record, frozenset({question_key, answer_key or ""}))
    return [
        ImportRecord(
            record=number,
            messages=[Message("user", question)],
            response=answer or None,
            external_id=take_external_id(extra),
            metadata=extra,
        )
    ]


def read_text(value: Any, number: int) -> list[ImportRecord]:
    """Read a record that is a prompt string or an object with a `text` field."""
    if isinstance(value, str):
        return [ImportRecord(record=number, messages=[Message("user", value)], response=None)]
    record = _require_object(value, "text")
    text = required_text(record, "text")
    extra = extra_fields(record, _TEXT_FIELDS)
    return [
        ImportRecord(
            record=number,
            messages=[Message("user", text)],
            response=None,
            external_id=take_external_id(extra),
            metadata=extra,
        )
    ]


def read_prompt_completion(value: Any, number: int) -> list[ImportRecord]:
    """Read TRL prompt-completion or prompt-only records, in string or conversational form."""
    record = _require_object(value, "prompt_completion")
    prompt = record.get("prompt")
    if isinstance(prompt, str):
        messages = [Message("user", prompt)]
    elif isinstance(prompt, list):
        messages = read_messages(prompt, "prompt")
    else:
        raise RowProblem(f"Field 'prompt' must be a string or a list of messages, got {describe_type(prompt)}.")
    completion_key = first_present(record, _COMPLETION_FIELDS) or "completion"
    completion = record.get(completion_key)
    if isinstance(completion, list):
        completion_messages = read_messages(completion, completion_key)
        if not completion_messages or completion_messages[-1].role != "assistant":
            raise RowProblem(f"Field '{completion_key}' must end with an assistant message.")
        messages += completion_messages[:-1]
        response: str | None = completion_messages[-1].content
    elif completion is None or isinstance(completion, str):
        response = completion or None
    else:
        raise RowProblem(
            f"Field '{completion_key}' must be a string or a list of messages, got {describe_type(completion)}."
        )
    system = optional_text(record, "system")
    if system:
        messages.insert(0, Message("system", system))
    extra = extra_fields(record, frozenset({"prompt", completion_key, "system", "tools"}))
    return [
        ImportRecord(
            record=number,
            messages=messages,
            response=response,
            external_id=take_external_id(extra),
            tools=read_tools(record),
            metadata=extra,
        )
    ]


def read_sharegpt(value: Any, number: int) -> list[ImportRecord]:
    record = _require_object(value, "sharegpt")
    if "conversations" not in record:
        raise RowProblem("Field 'conversations' is missing.")
    messages = read_messages(record["conversations"], "conversations")
    return _conversation_record(record, number, messages, "conversations", _SHAREGPT_FIELDS)


def read_chat_messages(value: Any, number: int) -> list[ImportRecord]:
    """Read OpenAI/TRL conversational records. A KTO `label` stays in the metadata."""
    record = _require_object(value, "messages")
    if "messages" not in record:
        raise RowProblem("Field 'messages' is missing.")
    messages = read_messages(record["messages"], "messages")
    return _conversation_record(record, number, messages, "messages", _MESSAGES_FIELDS)


def read_firefly(value: Any, number: int) -> list[ImportRecord]:
    """Read Firefly records: `conversation` is a list of {human, assistant} turn pairs."""
    record = _require_object(value, "firefly")
    turns = record.get("conversation")
    if not isinstance(turns, list) or not turns:
        raise RowProblem("Field 'conversation' must be a non-empty list of {human, assistant} objects.")
    messages: list[Message] = []
    for index, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise RowProblem(f"Field 'conversation[{index}]' must be an object, got {describe_type(turn)}.")
        try:
            messages.append(Message("user", required_text(turn, "human")))
            if turn.get("assistant") is not None:
                messages.append(Message("assistant", required_text(turn, "assistant")))
        except RowProblem as exc:
            raise RowProblem(f"In conversation[{index}]: {exc.reason}") from None
    return _conversation_record(record, number, messages, "conversation", _FIREFLY_FIELDS)


def read_mt_bench(value: Any, number: int) -> list[ImportRecord]:
    """Read FastChat MT-Bench and Vicuna-bench questions. Only single-turn questions can be imported."""
    record = _require_object(value, "mt_bench")
    turns = record.get("turns")
    if not isinstance(turns, list) or not turns or not all(isinstance(turn, str) for turn in turns):
        raise RowProblem("Field 'turns' must be a non-empty list of strings.")
    if len(turns) > 1:
        raise RowProblem(
            f"The question has {len(turns)} user turns and no answers between them. sftdesk needs the "
            "assistant's answer to each earlier turn, so import only single-turn questions, or give "
            "the conversation with its answers in the ShareGPT or messages shape."
        )
    extra = extra_fields(record, _MT_BENCH_FIELDS)
    return [
        ImportRecord(
            record=number,
            messages=[Message("user", turns[0])],
            response=None,
            external_id=take_external_id(extra),
            metadata=extra,
        )
    ]


_MOSS_TURN_NUMBER = re.compile(r"turn_(\d+)$")
_MOSS_EMPTY = re.compile(r"<\|[^|]+\|>: None<eo[a-z]>\n?$")


def _strip_moss_tag(text: Any, tag: str, end: str, where: str) -> str:
    prefix = f"<|{tag}|>: "
    if not isinstance(text, str) or not text.startswith(prefix):
        raise RowProblem(f"Field '{where}' must be a string starting with {prefix!r}.")
    body = text[len(prefix) :]
    for suffix in (f"{end}\n", end):
        if body.endswith(suffix):
            return body[: -len(suffix)]
    raise RowProblem(f"Field '{where}' must end with {end!r}.")


def read_moss(value: Any, number: int) -> list[ImportRecord]:
    """Read a MOSS conversation. Turns that use plugins or inner thoughts are rejected."""
    record = _require_object(value, "moss")
    chat = record.get("chat")
    if not isinstance(chat, dict) or not chat:
        raise RowProblem("Field 'chat' must be an object of turn_1, turn_2, ... entries.")

    ordered = []
    for key, turn in chat.items():
        match = _MOSS_TURN_NUMBER.match(key)
        if match is None or not isinstance(turn, dict):
            raise RowProblem(f"Field 'chat.{key}' is not a turn_<n> object.")
        ordered.append((int(match.group(1)), key, turn))
    ordered.sort()

    messages: list[Message] = []
    system = optional_text(record, "meta_instruction")
    if system:
        messages.append(Message("system", system))
    for _, key, turn in ordered:
        for extra_key in ("Inner Thoughts", "Commands", "Tool Responses"):
            extra_text = turn.get(extra_key)
            if extra_text is not None and not (isinstance(extra_text, str) and _MOSS_EMPTY.match(extra_text)):
                raise RowProblem(
                    f"Field 'chat.{key}.{extra_key}' is not empty. sftdesk imports only MOSS "
                    "conversations without plugins or inner thoughts."
                )
        messages.append(Message("user", _strip_moss_tag(turn.get("Human"), "Human", "<eoh>", f"chat.{key}.Human")))
        messages.append(Message("assistant", _strip_moss_tag(turn.get("MOSS"), "MOSS", "<eom>", f"chat.{key}.MOSS")))

    prompt, response = split_response(messages, "chat")
    extra = extra_fields(record, _MOSS_FIELDS)
    return [
        ImportRecord(
            record=number,
            messages=prompt,
            response=response,
            external_id=take_external_id(extra),
            metadata=extra,
        )
    ]


def _unsupported(reason: str) -> ShapeReader:
    def reject(value: Any, number: int) -> list[ImportRecord]:
        raise RowProblem(reason)

    return reject


SUPPORTED_SHAPES = (
    "alpaca",
    "sharegpt",
    "messages",
    "prompt_completion",
    "preference",
    "text",
    "csv",
    "hh_rlhf",
    "self_instruct",
    "question_answer",
    "firefly",
    "moss",
    "oasst_tree",
    "mt_bench",
)

SHAPE_READERS: dict[str, ShapeReader] = {
    "alpaca": read_alpaca,
    "sharegpt": read_sharegpt,
    "messages": read_chat_messages,
    "prompt_completion": read_prompt_completion,
    "preference": lambda value, number: read_preference(_require_object(value, "preference"), number),
    "text": read_text,
    "hh_rlhf": lambda value, number: read_hh_transcripts(_require_object(value, "hh_rlhf"), number),
    "self_instruct": read_self_instruct,
    "question_answer": read_question_answer,
    "firefly": read_firefly,
    "moss": read_moss,
    "oasst_tree": lambda value, number: read_oasst_tree(_require_object(value, "oasst_tree"), number),
    "mt_bench": read_mt_bench,
    # Recognised so that each record gets a clear reason, but not importable.
    "oasst_messages": _unsupported(
        "The record is a single OpenAssistant message that points to its parent (parent_message_id), "
        "not a whole conversation. Export the message trees as JSONL with one tree per line "
        "(message_tree_id, prompt, replies), or convert them to the ShareGPT or messages shape."
    ),
    "mt_bench_answers": _unsupported(
        "The record holds model answers (choices[].turns) without their questions. Join the answers "
        "with their questions and import them in the ShareGPT or messages shape."
    ),
}

SHAPE_HELP = (
    "Supported shapes: alpaca (instruction, input, output), sharegpt (conversations of from/value), "
    "messages (messages of role/content), prompt_completion (prompt, completion), "
    "preference (prompt or conversations, chosen, rejected), text (text), "
    "question_answer (question, answer), self_instruct (instruction, instances), "
    "firefly (conversation of human/assistant), hh_rlhf, moss, oasst_tree and mt_bench."
)


def detect_shape(value: Any) -> str | None:
    """Return the shape of a source record from its keys, or None when no shape fits.

    The most specific keys are checked first, so that a preference record with
    `conversations` is not read as ShareGPT, nor a self-instruct task as Alpaca.
    """
    if isinstance(value, str):
        return "text"
    if not isinstance(value, dict):
        return None
    keys = value.keys()

    if ("chosen" in keys and "rejected" in keys) or ("chosen_messages" in keys and "rejected_messages" in keys):
        if looks_like_hh_transcript(value.get("chosen")) and not keys & {"prompt", "conversations", "instruction"}:
            return "hh_rlhf"
        return "preference"

    if "conversations" in keys:
        return "sharegpt"
    if "messages" in keys:
        return "messages"
    if "conversation" in keys:
        return "firefly"

    if "instruction" in keys and "instances" in keys:
        return "self_instruct"
    if "prompt" in keys and isinstance(value["prompt"], dict) and "replies" in value["prompt"]:
        return "oasst_tree"
    if "prompt" in keys:
        return "prompt_completion"
    if "instruction" in keys:
        return "alpaca"
    if keys & set(_QUESTION_FIELDS):
        return "question_answer"

    if "text" in keys and "parent_message_id" in keys:
        return "oasst_messages"
    if "text" in keys:
        return "text"
    if "turns" in keys:
        return "mt_bench"
    if "choices" in keys and "question_id" in keys:
        return "mt_bench_answers"
    if "chat" in keys:
        return "moss"
    return None
