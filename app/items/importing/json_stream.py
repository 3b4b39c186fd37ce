"""Split JSON, JSONL and concatenated JSON documents into records while streaming.

A JSON array is cut into elements by a byte scanner that skips over strings and tracks
bracket depth, and each element is parsed on its own with orjson. One broken element
therefore costs one RowError, and memory grows with the largest element, not with the
file. Each reader yields `(record_number, value)` pairs or RowError.
"""

import functools
import re
from collections.abc import Iterator
from typing import Any

import orjson

from app.items.records import RowError

ParsedValue = tuple[int, Any] | RowError

_QUOTE, _COMMA = ord('"'), ord(",")
_OPEN_BRACE, _CLOSE_BRACE = ord("{"), ord("}")
_OPEN_BRACKET, _CLOSE_BRACKET = ord("["), ord("]")
_WHITESPACE = b" \t\r\n"

# A whole string, or a lone quote when the string does not end inside the buffer, or a
# structural character.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},"]', re.DOTALL)
_NON_WHITESPACE = re.compile(rb"[^ \t\r\n]")
# A closing brace followed by the separator that ends an array element.
_OBJECT_END = re.compile(rb"}[ \t\r\n]*([,\]])")
# The first key of an object, such as b'"instruction"'.
_FIRST_KEY = re.compile(rb'\{[ \t\r\n]*("[^"\\]*")')
# A \uD800-\uDFFF escape; a high surrogate followed by a low one is a valid pair.
_SURROGATE_ESCAPE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?:\\u[dD][c-fC-F][0-9a-fA-F]{2})?|\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
_FAST_PATH_ATTEMPTS = 3
_COMPACT_AFTER_BYTES = 4 << 20


def _find_lone_surrogate(raw: bytes) -> tuple[int, str] | None:
    """Return the character column and text of the first unpaired surrogate escape in `raw`."""
    for match in _SURROGATE_ESCAPE.finditer(raw):
        backslashes = len(raw[: match.start()]) - len(raw[: match.start()].rstrip(b"\\"))
        if backslashes % 2 == 1:
            continue  # an escaped backslash followed by the letters "u", "d", ...
        if match.end() - match.start() == 6:
            line_start = raw.rfind(b"\n", 0, match.start()) + 1
            column = len(raw[line_start : match.start()].decode("utf-8", "replace")) + 1
            return column, match.group().decode("ascii")
    return None


def describe_json_error(raw: bytes, exc: orjson.JSONDecodeError, first_line: int) -> str:
    """Describe why `raw` is not valid JSON, with line numbers counted from `first_line`."""
    surrogate = _find_lone_surrogate(raw)
    if surrogate is not None:
        column, escape = surrogate
        return (
            f"contains the escape {escape} at column {column}, an unpaired UTF-16 surrogate that "
            "is not valid Unicode text; replace it with the character it stands for or remove it"
        )
    return f"is not valid JSON: {exc.msg} at line {first_line + exc.lineno - 1} column {exc.colno}"


def iter_jsonl(chunks: Iterator[bytes]) -> Iterator[ParsedValue]:
    """Yield one value per non-blank line, numbered by physical line (blank lines count)."""
    line_number = 0
    pending: list[bytes] = []
    for chunk in chunks:
        if b"\n" not in chunk:
            pending.append(chunk)
            continue
        if pending:
            pending.append(chunk)
            chunk = b"".join(pending)
        lines = chunk.split(b"\n")
        tail = lines.pop()
        pending = [tail] if tail else []
        for line in lines:
            line_number += 1
            try:
                yield line_number, orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                if line.strip(_WHITESPACE):
                    yield RowError(line_number, f"Line {line_number} {describe_json_error(line, exc, line_number)}.")
    if pending:
        line = b"".join(pending)
        line_number += 1
        try:
            yield line_number, orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            if line.strip(_WHITESPACE):
                yield RowError(line_number, f"Line {line_number} {describe_json_error(line, exc, line_number)}.")


class _Buffer:
    """Bytes read so far from the chunk iterator, with line numbers for offsets in it."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.data = b""
        self.eof = False
        self._counted_to = 0
        self._line = 1

    def fill(self) -> bool:
        """Append at least as many bytes as the buffer contains, and at least one chunk. Return False at the end."""
        if self.eof:
            return False
        wanted = max(len(self.data), 1)
        parts = [self.data]
        added = 0
        for chunk in self._chunks:
            parts.append(chunk)
            added += len(chunk)
            if added >= wanted:
                break
        else:
            self.eof = True
        self.data = b"".join(parts)
        return added > 0

    def compact(self, keep_from: int) -> int:
        """Drop the bytes before `keep_from` once enough have piled up, and return the offset shift."""
        if keep_from < _COMPACT_AFTER_BYTES:
            return 0
        self.line_at(keep_from)
        self.data = self.data[keep_from:]
        self._counted_to -= keep_from
        return keep_from

    def line_at(self, offset: int) -> int:
        """Return the 1-based line of `offset`. Offsets must not decrease between calls."""
        if offset > self._counted_to:
            self._line += self.data.count(b"\n", self._counted_to, offset)
            self._counted_to = offset
        return self._line

    def skip_whitespace(self, offset: int) -> int:
        """Return the offset of the next non-whitespace byte, or len(data) at the end of input."""
        while True:
            match = _NON_WHITESPACE.search(self.data, offset)
            if match is not None:
                return match.start()
            offset = len(self.data)
            if not self.fill():
                return offset


def _scan_element_end(buffer: _Buffer, start: int) -> tuple[int, int | None]:
    """Find the comma or closing bracket that ends the array element starting at `start`.

    Returns the separator's offset and byte, or (len(data), None) when the input ends first.
    A closer of the wrong kind also closes the brackets opened after its match, as if their
    closers were missing, so that a broken element does not swallow the ones after it.
    orjson rejects the broken element later.
    """
    open_brackets: list[int] = []
    offset = start
    while True:
        match = _TOKEN.search(buffer.data, offset)
        if match is None:
            offset = len(buffer.data)
            if not buffer.fill():
                return offset, None
            continue
        position = match.start()
        byte = buffer.data[position]
        if byte == _QUOTE:
            if match.end() - position == 1:
                offset = position
                if not buffer.fill():
                    return len(buffer.data), None
                continue
            offset = match.end()
            continue
        offset = match.end()
        if byte == _OPEN_BRACE or byte == _OPEN_BRACKET:
            open_brackets.append(byte)
        elif byte == _CLOSE_BRACE or byte == _CLOSE_BRACKET:
            opener = _OPEN_BRACE if byte == _CLOSE_BRACE else _OPEN_BRACKET
            if opener in open_brackets:
                while open_brackets.pop() != opener:
                    pass
            elif byte == _CLOSE_BRACKET and not open_brackets:
                return position, byte
        elif not open_brackets:
            return position, byte


@functools.lru_cache(maxsize=64)
def _next_element_pattern(first_key: bytes) -> re.Pattern[bytes]:
    """Match a '}' followed by a comma and an object that starts with `first_key`."""
    return re.compile(rb"}[ \t\r\n]*(,)(?=[ \t\r\n]*\{[ \t\r\n]*" + re.escape(first_key) + rb")")


def _try_object_fast(buffer: _Buffer, start: int) -> tuple[dict[str, Any], int, int] | None:
    """Parse an object element by guessing where it ends, without scanning it token by token.

    A guess is right whenever the bytes up to that brace parse as one complete object,
    because a JSON object ends exactly at its matching brace. The first guesses are a
    '}' followed by the next element that starts with the same key, which skips the
    nested objects of conversation records. The next guesses are any '}' followed by ','
    or ']'. None means that the caller must scan the element.
    """
    patterns = [_OBJECT_END]
    key_match = _FIRST_KEY.match(buffer.data, start)
    if key_match is not None:
        patterns.insert(0, _next_element_pattern(key_match.group(1)))
    for pattern in patterns:
        offset = start
        for _ in range(_FAST_PATH_ATTEMPTS):
            match = pattern.search(buffer.data, offset)
            if match is None:
                break
            try:
                value = orjson.loads(buffer.data[start : match.start() + 1])
            except orjson.JSONDecodeError:
                offset = match.start() + 1
                continue
            return value, match.start(1), buffer.data[match.start(1)]
    return None


def _unclosed_array(number: int) -> RowError:
    return RowError(
        number + 1,
        f"The JSON array is not closed: the file ends after {number} elements without a ']'. "
        "The file may be truncated; check its end.",
    )


def iter_json_array(chunks: Iterator[bytes]) -> Iterator[ParsedValue]:
    """Yield the elements of a top-level JSON array, numbered from 1.

    An empty slot (a trailing comma before ']', or two commas in a row) takes a number
    and yields a RowError, and so do an unclosed array and data after the closing ']'.
    """
    buffer = _Buffer(chunks)
    offset = buffer.skip_whitespace(0) + 1  # the caller checked that this byte is '['
    number = 0
    after_comma = False
    while True:
        offset -= buffer.compact(offset)
        offset = buffer.skip_whitespace(offset)
        if offset >= len(buffer.data):
            yield _unclosed_array(number)
            return
        byte = buffer.data[offset]
        line = buffer.line_at(offset)
        if byte == _CLOSE_BRACKET:
            if after_comma:
                number += 1
                yield RowError(
                    number,
                    f"Trailing comma before the closing ']' at line {line}: strict JSON does not allow it. "
                    f"Every element before it was read ({number - 1} in all); remove the comma to silence this.",
                )
            offset += 1
            break
        if byte == _COMMA:
            number += 1
            yield RowError(
                number,
                f"Element {number} at line {line} is empty: a comma has no value before it. Remove the extra comma.",
            )
            offset += 1
            after_comma = True
            continue

        number += 1
        fast = _try_object_fast(buffer, offset) if byte == _OPEN_BRACE else None
        if fast is not None:
            value, separator_at, separator = fast
            yield number, value
        else:
            separator_at, separator = _scan_element_end(buffer, offset)
            raw = buffer.data[offset:separator_at]
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                if separator is None:
                    reason = (
                        f"Element {number} at line {line} is incomplete: the file ends inside it. "
                        "The file may be truncated; check its end."
                    )
                else:
                    reason = f"Element {number} at line {line} {describe_json_error(raw, exc, line)}."
                yield RowError(number, reason)
            else:
                yield number, value
                if separator is None:
                    yield _unclosed_array(number)
        if separator is None:
            return
        offset = separator_at + 1
        if separator == _CLOSE_BRACKET:
            break
        after_comma = True

    end = buffer.skip_whitespace(offset)
    if end < len(buffer.data):
        yield RowError(
            number + 1,
            f"Unexpected data after the closing ']' at line {buffer.line_at(end)}. "
            "A JSON file holds one array of records; remove the extra data or split the file.",
        )


def _scan_value_end(buffer: _Buffer, start: int) -> int | None:
    """Return the offset just past the object or array starting at `start`, or None at the end of input."""
    depth = 0
    offset = start
    while True:
        match = _TOKEN.search(buffer.data, offset)
        if match is None:
            offset = len(buffer.data)
            if not buffer.fill():
                return None
            continue
        position = match.start()
        byte = buffer.data[position]
        if byte == _QUOTE and match.end() - position == 1:
            offset = position
            if not buffer.fill():
                return None
            continue
        offset = match.end()
        if byte == _OPEN_BRACE or byte == _OPEN_BRACKET:
            depth += 1
        elif byte == _CLOSE_BRACE or byte == _CLOSE_BRACKET:
            depth -= 1
            if depth <= 0:
                return offset


def iter_json_documents(chunks: Iterator[bytes]) -> Iterator[ParsedValue]:
    """Yield each top-level object of a file that contains one or more JSON documents in a row.

    This covers a single pretty-printed object (one record) and pretty-printed objects
    written one after another.
    """
    buffer = _Buffer(chunks)
    offset = 0
    number = 0
    while True:
        offset -= buffer.compact(offset)
        offset = buffer.skip_whitespace(offset)
        if offset >= len(buffer.data):
            return
        number += 1
        line = buffer.line_at(offset)
        byte = buffer.data[offset]
        if byte != _OPEN_BRACE and byte != _OPEN_BRACKET:
            yield RowError(
                number,
                f"Unexpected text at line {line}: each record must be a JSON object starting with '{{'. "
                "The rest of the file was skipped; fix the text at that line.",
            )
            return
        end = _scan_value_end(buffer, offset)
        raw = buffer.data[offset:end]
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if end is None:
                reason = (
                    f"Record {number} at line {line} is incomplete: the file ends inside it. "
                    "The file may be truncated; check its end."
                )
            else:
                reason = f"Record {number} at line {line} {describe_json_error(raw, exc, line)}."
            yield RowError(number, reason)
        else:
            yield number, value
        if end is None:
            return
        offset = end
