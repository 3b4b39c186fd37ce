"""Records that the import parsers produce, and the hashes used for duplicates and splits.

Message content is stored exactly as the source gives it. Only the hashes normalize text,
so that two prompts that differ in case, Unicode compatibility forms or whitespace count
as the same prompt.
"""

import hashlib
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import orjson

# function_call is the assistant's tool call (its content is the call as JSON text) and
# observation is the tool's result.
ROLES = ("system", "user", "assistant", "function_call", "observation")

# Maximum length of an external id, because the items table stores it in a String(500) column.
MAX_EXTERNAL_ID_CHARS = 500


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str


@dataclass(slots=True)
class ImportRecord:
    """One prompt read from an import file, with its response or preference pair when the file has them.

    `record` is the 1-based position in the source: the JSON array element, the JSONL line
    (blank lines count), the CSV record after the header or the text line. A source record
    that expands to several prompts (self-instruct instances) gives several ImportRecords
    with the same number. `messages` never ends with an assistant or function_call turn.
    A `response` of None or "" means that the prompt still needs a response. Preference
    records carry `chosen` and `rejected` and leave `response` as None.
    """

    record: int
    messages: list[Message]
    response: str | None
    chosen: str | None = None
    rejected: str | None = None
    external_id: str | None = None
    tools: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RowError:
    """A source record that was not imported, with a reason that names the field and the fix."""

    record: int
    reason: str


def normalize_text(text: str) -> str:
    """Apply NFKC, casefold, collapse each run of whitespace to one space and strip the ends."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _normalized_turns(messages: list[Message]) -> list[list[str]]:
    return [[message.role, normalize_text(message.content)] for message in messages]


def prompt_hash(messages: list[Message]) -> str:
    """Return the sha256 hex digest of the roles and normalized contents of a prompt.

    Train/validation splits group items by this hash, so one prompt never lands in both.
    """
    return hashlib.sha256(orjson.dumps(_normalized_turns(messages))).hexdigest()


def content_hash(
    messages: list[Message],
    response: str | None = None,
    chosen: str | None = None,
    rejected: str | None = None,
) -> str:
    """Return the sha256 hex digest of the normalized prompt and responses.

    Imports use it to find exact duplicates. None and "" hash alike, because both mean
    that there is no response.
    """
    payload = {
        "messages": _normalized_turns(messages),
        "response": normalize_text(response or ""),
        "chosen": normalize_text(chosen or ""),
        "rejected": normalize_text(rejected or ""),
    }
    return hashlib.sha256(orjson.dumps(payload)).hexdigest()


def record_hashes(
    messages: list[Message],
    response: str | None,
    chosen: str | None,
    rejected: str | None,
) -> tuple[str, str]:
    """Return (prompt_hash, content_hash), normalizing the prompt once for both."""
    turns = _normalized_turns(messages)
    prompt_digest = hashlib.sha256(orjson.dumps(turns)).hexdigest()
    payload = {
        "messages": turns,
        "response": normalize_text(response) if response else "",
        "chosen": normalize_text(chosen) if chosen else "",
        "rejected": normalize_text(rejected) if rejected else "",
    }
    return prompt_digest, hashlib.sha256(orjson.dumps(payload)).hexdigest()
