"""Typed access to the fields of one source record, raising RowProblem with a readable reason."""

from typing import Any

from app.items.importing.errors import RowProblem
from app.items.records import MAX_EXTERNAL_ID_CHARS

# Fields that identify a record in its source, in order of preference.
EXTERNAL_ID_FIELDS = (
    "external_id",
    "id",
    "uuid",
    "conversation_id",
    "question_id",
    "prompt_id",
    "message_tree_id",
)


def describe_type(value: Any) -> str:
    """Name the JSON type of `value` for an error message, such as "a number" or "null"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def required_text(record: dict[str, Any], key: str) -> str:
    """Return the string in `record[key]`, raising RowProblem when it is missing or not a string."""
    if key not in record:
        raise RowProblem(f"Field '{key}' is missing.")
    value = record[key]
    if not isinstance(value, str):
        raise RowProblem(f"Field '{key}' must be a string, got {describe_type(value)}.")
    return value


def optional_text(record: dict[str, Any], key: str) -> str:
    """Return the string in `record[key]`, or "" when the field is missing or null."""
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RowProblem(f"Field '{key}' must be a string or null, got {describe_type(value)}.")
    return value


def first_present(record: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    """Return the first of `keys` that `record` has, or None."""
    for key in keys:
        if key in record:
            return key
    return None


def join_instruction(instruction: str, extra_input: str) -> str:
    """Join an Alpaca-style instruction and its input with a blank line. An empty input adds nothing."""
    if extra_input:
        return f"{instruction}\n\n{extra_input}"
    return instruction


def take_external_id(extra: dict[str, Any]) -> str | None:
    """Remove the first id-like field with a string or integer value from `extra` and return it as text."""
    if not extra:
        return None
    for key in EXTERNAL_ID_FIELDS:
        if key not in extra:
            continue
        value = extra[key]
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            continue
        del extra[key]
        text = str(value)
        if len(text) > MAX_EXTERNAL_ID_CHARS:
            raise RowProblem(
                f"Field '{key}' is {len(text):,} characters long; an external id may have at most "
                f"{MAX_EXTERNAL_ID_CHARS} characters. Shorten it or remove the field."
            )
        return text or None
    return None


def extra_fields(record: dict[str, Any], consumed: frozenset[str]) -> dict[str, Any]:
    """Return the fields of `record` that the shape did not consume, to keep as metadata."""
    return {key: value for key, value in record.items() if key not in consumed}
