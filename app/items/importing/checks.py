"""Checks that every ImportRecord passes before the reader yields it."""

from app.items.importing.errors import RowProblem
from app.items.records import ImportRecord


def _check_text(text: str, label: str, max_text_chars: int) -> None:
    if len(text) > max_text_chars:
        raise RowProblem(
            f"{label} is {len(text):,} characters long, over the limit of {max_text_chars:,} "
            "characters. Shorten it, or raise the limit with the SFTDESK_MAX_TEXT_CHARS setting."
        )
    if "\x00" in text:
        raise RowProblem(f"{label} contains a NUL character (U+0000), which the database cannot store. Remove it.")


def check_record(record: ImportRecord, max_text_chars: int) -> None:
    """Raise RowProblem unless the record has a user turn to respond to and every text fits the limits."""
    if not record.messages:
        raise RowProblem("The record has no prompt messages.")
    if not any(message.role == "user" for message in record.messages):
        raise RowProblem("The prompt has no user message; add the user's turn before the response.")
    last = record.messages[-1]
    if last.role in ("assistant", "function_call"):
        raise RowProblem(f"The prompt ends with an {last.role} turn; it must end with the turn to respond to.")
    if last.role == "user" and not last.content.strip():
        raise RowProblem("The last user message is empty; the record has no prompt to respond to.")
    for index, message in enumerate(record.messages, start=1):
        _check_text(message.content, f"Message {index} ({message.role})", max_text_chars)
    if record.response:
        _check_text(record.response, "The response", max_text_chars)
    if record.chosen is not None:
        _check_text(record.chosen, "The chosen response", max_text_chars)
    if record.rejected is not None:
        _check_text(record.rejected, "The rejected response", max_text_chars)
    for label, text in (("chosen", record.chosen), ("rejected", record.rejected)):
        if text is not None and not text.strip():
            raise RowProblem(f"The {label} response is empty; a preference pair needs text on both sides.")
    if record.tools is not None:
        _check_text(record.tools, "The tools field", max_text_chars)
