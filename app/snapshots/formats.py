"""Write snapshot rows as SFT dataset files in the formats that training tools read.

Every format is UTF-8 with non-ASCII text written as itself (never as \\uXXXX escapes),
keys in a fixed order and LF line endings, so the same rows always give the same bytes.

- messages: JSON Lines of {"messages": [...], "tools"?}, TRL's conversational format.
- prompt_completion: JSON Lines of {"prompt": [...], "completion": [assistant], "tools"?}.
- preference: JSON Lines of {"prompt": [...], "chosen": [assistant], "rejected": [assistant],
  "tools"?}, TRL's conversational preference format; only rows with chosen and rejected.
- alpaca: a JSON array of {"instruction", "input", "output", "system"?, "history"?}. The
  final user message becomes `instruction` whole and `input` is "", so the importer reads
  back the same text. `history` contains the earlier [user, assistant] pairs.
- sharegpt: a JSON array of {"conversations": [{"from", "value"}], "system"?, "tools"?}
  with human/gpt/function_call/observation turns, as LLaMA-Factory reads them.

The TRL formats write a function_call turn as an assistant message with `tool_calls`
([{"type": "function", "function": {"name", "arguments"}}]) and an observation turn as a
"tool" message, and they write `tools` as parsed JSON. The importer turns these back into
function_call turns whose text is the call re-serialised by json.dumps, which matches the
original text when it was written the same way (as in LLaMA-Factory's Glaive files).
The external id and metadata are not written, so that every row of a file has the same keys.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import orjson

from app.items.records import ROLES, Message

EXPORT_FORMATS = ("messages", "prompt_completion", "alpaca", "sharegpt", "preference")

_JSON_ARRAY_FORMATS = ("alpaca", "sharegpt")
_SHAREGPT_FROM = {
    "system": "system",
    "user": "human",
    "assistant": "gpt",
    "function_call": "function_call",
    "observation": "observation",
}


@dataclass
class ExportRow:
    """One item as it goes into a snapshot file.

    `messages` may hold Message objects or {"role", "content"} dicts as stored on items.
    """

    messages: list[Message] | list[dict[str, str]]
    response: str | None = None
    chosen: str | None = None
    rejected: str | None = None
    tools: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    external_id: str | None = None


def file_name(fmt: str, split: str) -> str:
    """Return the file name for one split in one format, such as "train.messages.jsonl"."""
    _check_format(fmt)
    extension = "json" if fmt in _JSON_ARRAY_FORMATS else "jsonl"
    return f"{split}.{fmt}.{extension}"


def _check_format(fmt: str) -> None:
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"Unknown export format {fmt!r}; use one of: {', '.join(EXPORT_FORMATS)}.")


def _turns(row: ExportRow) -> list[tuple[str, str]]:
    turns = []
    for message in row.messages:
        if isinstance(message, Message):
            turns.append((message.role, message.content))
        elif isinstance(message, Mapping):
            turns.append((message["role"], message["content"]))
        else:
            raise TypeError(f"A message must be a Message or a dict, got {type(message).__name__}.")
    return turns


def _parse_tool_calls(content: str) -> list[dict[str, Any]] | None:
    """Return the calls in a function_call turn, or None when it is not {"name", "arguments"} JSON."""
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    calls = value if isinstance(value, list) else [value]
    if not calls:
        return None
    for call in calls:
        if not (isinstance(call, dict) and set(call) == {"name", "arguments"} and isinstance(call["name"], str)):
            return None
    return calls


def _parse_tools(tools: str | None) -> list[Any] | None:
    if tools is None:
        return None
    try:
        value = orjson.loads(tools)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, list) else None


def _trl_expressible(row: ExportRow) -> bool:
    if row.tools is not None and _parse_tools(row.tools) is None:
        return False
    return all(role != "function_call" or _parse_tool_calls(content) is not None for role, content in _turns(row))


def _alpaca_expressible(row: ExportRow) -> bool:
    turns = _turns(row)
    if turns and turns[0][0] == "system":
        turns = turns[1:]
    if not turns or len(turns) % 2 == 0 or row.tools is not None:
        return False
    expected = ("user", "assistant")
    return all(role == expected[index % 2] for index, (role, _) in enumerate(turns))


def can_express(fmt: str, row: ExportRow) -> bool:
    """Return whether `fmt` can express `row` without losing text. write_rows raises for rows that fail this."""
    _check_format(fmt)
    if not row.messages or any(role not in ROLES for role, _ in _turns(row)):
        return False
    if fmt == "preference":
        return bool(row.chosen) and bool(row.rejected) and _trl_expressible(row)
    if not row.response:
        return False
    if fmt in ("messages", "prompt_completion"):
        return _trl_expressible(row)
    if fmt == "alpaca":
        return _alpaca_expressible(row)
    return True


def _trl_message(role: str, content: str) -> dict[str, Any]:
    if role == "function_call":
        calls = _parse_tool_calls(content) or []
        return {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"type": "function", "function": call} for call in calls],
        }
    if role == "observation":
        return {"role": "tool", "content": content}
    return {"role": role, "content": content}


def _with_tools(document: dict[str, Any], row: ExportRow) -> dict[str, Any]:
    tools = _parse_tools(row.tools)
    if tools is not None:
        document["tools"] = tools
    return document


def _assistant(text: str | None) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": text}]


def _messages_document(row: ExportRow) -> dict[str, Any]:
    messages = [_trl_message(role, content) for role, content in _turns(row)]
    return _with_tools({"messages": [*messages, *_assistant(row.response)]}, row)


def _prompt_completion_document(row: ExportRow) -> dict[str, Any]:
    prompt = [_trl_message(role, content) for role, content in _turns(row)]
    return _with_tools({"prompt": prompt, "completion": _assistant(row.response)}, row)


def _preference_document(row: ExportRow) -> dict[str, Any]:
    prompt = [_trl_message(role, content) for role, content in _turns(row)]
    return _with_tools({"prompt": prompt, "chosen": _assistant(row.chosen), "rejected": _assistant(row.rejected)}, row)


def _alpaca_document(row: ExportRow) -> dict[str, Any]:
    turns = _turns(row)
    system = None
    if turns[0][0] == "system":
        system = turns[0][1]
        turns = turns[1:]
    document: dict[str, Any] = {"instruction": turns[-1][1], "input": "", "output": row.response}
    if system is not None:
        document["system"] = system
    history = [[turns[index][1], turns[index + 1][1]] for index in range(0, len(turns) - 1, 2)]
    if history:
        document["history"] = history
    return document


def _sharegpt_document(row: ExportRow) -> dict[str, Any]:
    turns = _turns(row)
    system = None
    if turns[0][0] == "system":
        system = turns[0][1]
        turns = turns[1:]
    conversations = [{"from": _SHAREGPT_FROM[role], "value": content} for role, content in turns]
    conversations.append({"from": "gpt", "value": row.response})
    document: dict[str, Any] = {"conversations": conversations}
    if system is not None:
        document["system"] = system
    if row.tools is not None:
        document["tools"] = row.tools
    return document


_DOCUMENT_BUILDERS = {
    "messages": _messages_document,
    "prompt_completion": _prompt_completion_document,
    "preference": _preference_document,
    "alpaca": _alpaca_document,
    "sharegpt": _sharegpt_document,
}


class DatasetWriter:
    """Write rows of one format to one binary file, one at a time; close() ends a JSON array.

    `rows` counts the rows written so far. close() does not close `out`.
    """

    def __init__(self, fmt: str, out: BinaryIO) -> None:
        _check_format(fmt)
        self.fmt = fmt
        self.rows = 0
        self._out = out
        self._build = _DOCUMENT_BUILDERS[fmt]
        self._as_array = fmt in _JSON_ARRAY_FORMATS
        self._closed = False
        if self._as_array:
            out.write(b"[")

    def write(self, row: ExportRow) -> None:
        """Write one row, or raise ValueError for a row that can_express rejects."""
        if not can_express(self.fmt, row):
            raise ValueError(
                f"Row {self.rows + 1} cannot be written as {self.fmt}; filter rows with can_express first."
            )
        encoded = orjson.dumps(self._build(row))
        if self._as_array:
            self._out.write(b",\n" if self.rows else b"\n")
            self._out.write(encoded)
        else:
            self._out.write(encoded + b"\n")
        self.rows += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._as_array:
            self._out.write(b"\n]\n")


def write_rows(fmt: str, rows: Iterable[ExportRow], out: BinaryIO) -> int:
    """Write `rows` to `out` in `fmt`, one row at a time, and return the number written.

    Raises ValueError for a row that can_express rejects; the caller filters rows first.
    """
    writer = DatasetWriter(fmt, out)
    for row in rows:
        writer.write(row)
    writer.close()
    return writer.rows
