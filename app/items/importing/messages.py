"""Read lists of chat messages in ShareGPT and OpenAI/TRL form into canonical Messages.

A message is an object with `role` or `from` and with `content` or `value`. Content may be
a string or a list of parts:

- text parts (`{"type": "text", "text": ...}` or `{"type": "text", "value": ...}`) are
  concatenated without a separator;
- reasoning parts and an assistant's `reasoning_content` become a
  "<think>\\n...\\n</think>\\n\\n" block before the text, the convention that Qwen3 and
  DeepSeek-R1 chat templates read back;
- tool_call parts and OpenAI `tool_calls` become a separate function_call message after the
  assistant's text. Its content is the call as JSON text, or a JSON list for several calls.

Other part types (images, audio) are rejected, because sftdesk imports text only.
"""

import json
from typing import Any

from app.items.importing.errors import RowProblem
from app.items.importing.fields import describe_type
from app.items.records import Message

ROLE_ALIASES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "human": "user",
    "prompter": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "function_call": "function_call",
    "observation": "observation",
    "tool": "observation",
    "function": "observation",
    "ipython": "observation",
}

_ROLE_HELP = "use user/human, assistant/gpt, system, function_call, or observation/tool"


def map_role(value: Any, where: str) -> str:
    """Return the canonical role for a source role name such as "human" or "gpt"."""
    if not isinstance(value, str):
        raise RowProblem(f"Field '{where}' must be a role name, got {describe_type(value)}.")
    role = ROLE_ALIASES.get(value.strip().lower())
    if role is None:
        raise RowProblem(f"Field '{where}' has the unknown role {value!r}; {_ROLE_HELP}.")
    return role


def _think_block(reasoning: str) -> str:
    return f"<think>\n{reasoning}\n</think>\n\n"


def _join_calls(calls: list[str]) -> str:
    if len(calls) == 1:
        return calls[0]
    return "[" + ", ".join(calls) + "]"


def _openai_tool_call_text(call: Any, where: str) -> str:
    if not isinstance(call, dict):
        raise RowProblem(f"Field '{where}' must be a tool call object, got {describe_type(call)}.")
    function = call.get("function", call)
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise RowProblem(f"Field '{where}' must have a function name.")
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            pass  # keep arguments that are not JSON as the string they are
    return json.dumps({"name": function["name"], "arguments": arguments}, ensure_ascii=False)


def _part_text(part: dict[str, Any], where: str, keys: tuple[str, ...]) -> str:
    for key in keys:
        if key in part:
            value = part[key]
            if not isinstance(value, str):
                raise RowProblem(f"Field '{where}.{key}' must be a string, got {describe_type(value)}.")
            return value
    raise RowProblem(f"Field '{where}' has no {' or '.join(repr(key) for key in keys)} field.")


def _read_content(content: Any, role: str, where: str) -> tuple[str, list[str]]:
    """Return a message's text and the tool calls it contains."""
    if isinstance(content, str):
        return content, []
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        raise RowProblem(f"Field '{where}' must be a string or a list of content parts, got {describe_type(content)}.")
    pieces: list[str] = []
    calls: list[str] = []
    for index, part in enumerate(content):
        part_where = f"{where}[{index}]"
        if isinstance(part, str):
            pieces.append(part)
            continue
        if not isinstance(part, dict):
            raise RowProblem(f"Field '{part_where}' must be a content part object, got {describe_type(part)}.")
        kind = part.get("type", "text")
        if kind == "text":
            pieces.append(_part_text(part, part_where, ("text", "value")))
        elif kind in ("reasoning", "thinking"):
            if role != "assistant":
                raise RowProblem(
                    f"Field '{part_where}' is a {kind} part in a {role} message; only assistant messages may have one."
                )
            pieces.append(_think_block(_part_text(part, part_where, ("value", "text", kind))))
        elif kind == "tool_call":
            if role != "assistant":
                raise RowProblem(
                    f"Field '{part_where}' is a tool_call part in a {role} message; only assistant messages may have one."
                )
            value = part.get("value", part.get("tool_call"))
            if isinstance(value, str):
                calls.append(value)
            else:
                calls.append(_openai_tool_call_text(value, part_where))
        else:
            raise RowProblem(
                f"Field '{part_where}' has a content part of type {kind!r}; sftdesk imports text only, "
                "so remove image, audio and other non-text parts."
            )
    return "".join(pieces), calls


def read_message(item: Any, where: str) -> list[Message]:
    """Read one source message. An assistant turn with tool calls gives two Messages."""
    if not isinstance(item, dict):
        raise RowProblem(f"Field '{where}' must be a message object with role and content, got {describe_type(item)}.")
    if "role" in item:
        role = map_role(item["role"], f"{where}.role")
    elif "from" in item:
        role = map_role(item["from"], f"{where}.from")
    else:
        raise RowProblem(f"Field '{where}' has no 'role' or 'from' field.")

    content_key = None
    if "content" in item:
        content_key = "content"
    elif "value" in item:
        content_key = "value"
    tool_calls = item.get("tool_calls") if role == "assistant" else None
    content = item.get(content_key) if content_key else None
    if content is None and not tool_calls:
        if content_key is None:
            raise RowProblem(f"Field '{where}' has no 'content' or 'value' field.")
        raise RowProblem(f"Field '{where}.{content_key}' is null; it must be text.")
    text, calls = _read_content(content if content is not None else "", role, f"{where}.{content_key or 'content'}")

    reasoning = item.get("reasoning_content") if role == "assistant" else None
    if reasoning:
        if not isinstance(reasoning, str):
            raise RowProblem(f"Field '{where}.reasoning_content' must be a string, got {describe_type(reasoning)}.")
        text = _think_block(reasoning) + text
    if tool_calls:
        if not isinstance(tool_calls, list):
            raise RowProblem(f"Field '{where}.tool_calls' must be a list, got {describe_type(tool_calls)}.")
        calls += [_openai_tool_call_text(call, f"{where}.tool_calls[{index}]") for index, call in enumerate(tool_calls)]

    if not calls:
        return [Message(role, text)]
    if text:
        return [Message(role, text), Message("function_call", _join_calls(calls))]
    return [Message("function_call", _join_calls(calls))]


def read_messages(value: Any, field: str) -> list[Message]:
    """Read a list of source messages from the field named `field`."""
    if not isinstance(value, list):
        raise RowProblem(f"Field '{field}' must be a list of messages, got {describe_type(value)}.")
    messages: list[Message] = []
    for index, item in enumerate(value):
        messages.extend(read_message(item, f"{field}[{index}]"))
    return messages


def split_response(messages: list[Message], field: str) -> tuple[list[Message], str | None]:
    """Split a conversation into the prompt and its final assistant turn, if it ends with one."""
    if not messages:
        raise RowProblem(f"Field '{field}' has no messages.")
    last = messages[-1]
    if last.role == "assistant":
        return messages[:-1], last.content
    if last.role == "function_call":
        raise RowProblem(
            f"Field '{field}' ends with a tool call (function_call turn). sftdesk takes the final "
            "assistant text turn as the response, so end the conversation with the assistant's answer."
        )
    return messages, None


def read_tools(record: dict[str, Any]) -> str | None:
    """Return the record's tool schema as JSON text, keeping a string exactly as given."""
    tools = record.get("tools")
    if tools is None or tools == "" or tools == []:
        return None
    if isinstance(tools, str):
        return tools
    if isinstance(tools, (list, dict)):
        return json.dumps(tools, ensure_ascii=False)
    raise RowProblem(f"Field 'tools' must be a JSON string or a list of tool schemas, got {describe_type(tools)}.")
