"""Read CSV (RFC 4180) and plain-text import files.

CSV records may contain commas, doubled quotes and line breaks inside quoted fields, and
may end in LF or CRLF. The first record is the header. Columns map to roles through
ImportOptions.csv_mapping or, without one, through common header names.
"""

import codecs
import csv
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from app.items.importing.errors import ImportFormatError, RowProblem
from app.items.importing.fields import join_instruction
from app.items.records import MAX_EXTERNAL_ID_CHARS, ImportRecord, Message, RowError

# Mapping roles that ImportOptions.csv_mapping accepts, with their aliases.
_ROLE_ALIASES = {
    "prompt": "prompt",
    "instruction": "prompt",
    "input": "input",
    "response": "response",
    "output": "response",
    "completion": "response",
    "system": "system",
    "chosen": "chosen",
    "rejected": "rejected",
    "external_id": "external_id",
    "id": "external_id",
}

# Header names recognised without a mapping, in order of preference.
_HEADER_CANDIDATES = {
    "prompt": ("instruction", "prompt", "question", "query", "ask", "text", "input", "user"),
    "input": ("input",),
    "response": ("output", "completion", "response", "answer", "std_answer", "assistant", "target"),
    "system": ("system", "system_prompt"),
    "chosen": ("chosen",),
    "rejected": ("rejected",),
    "external_id": ("external_id", "id"),
}


def _iter_text_lines(chunks: Iterator[bytes]) -> Iterator[str]:
    """Yield decoded lines that keep their line break. Only LF ends a line, so CR and U+2028 stay inside."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    pending = ""
    for chunk in chunks:
        text = pending + decoder.decode(chunk)
        lines = text.split("\n")
        pending = lines.pop()
        for line in lines:
            yield line + "\n"
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending


def read_text_lines(chunks: Iterator[bytes]) -> Iterator[tuple[int, str]]:
    """Yield (line number, line) for each non-blank line, without its LF or CRLF ending."""
    for number, line in enumerate(_iter_text_lines(chunks), start=1):
        if line.endswith("\r\n"):
            line = line[:-2]
        elif line.endswith("\n"):
            line = line[:-1]
        if line.strip():
            yield number, line


@dataclass(frozen=True)
class CsvColumns:
    """The header column of each role, or None where the file has no such column."""

    header: list[str]
    prompt: str
    input: str | None = None
    response: str | None = None
    system: str | None = None
    chosen: str | None = None
    rejected: str | None = None
    external_id: str | None = None

    def mapped(self) -> set[str]:
        roles = (self.prompt, self.input, self.response, self.system, self.chosen, self.rejected, self.external_id)
        return {column for column in roles if column is not None}


def _columns_from_mapping(header: list[str], mapping: dict[str, str]) -> CsvColumns:
    roles: dict[str, str] = {}
    for key, column in mapping.items():
        role = _ROLE_ALIASES.get(key)
        if role is None:
            raise ImportFormatError(
                f"Unknown role {key!r} in csv_mapping. Use prompt (or instruction), input, response "
                "(or output), system, chosen, rejected and external_id."
            )
        if column not in header:
            raise ImportFormatError(
                f"csv_mapping names the column {column!r} for {key}, but the header has only {header}. "
                "Fix the column name in csv_mapping."
            )
        roles[role] = column
    if "prompt" not in roles:
        raise ImportFormatError("csv_mapping must name the prompt column, for example {'prompt': 'question'}.")
    return CsvColumns(header=header, **roles)


def _columns_from_header(header: list[str]) -> CsvColumns:
    by_name = {name.strip().casefold(): name for name in reversed(header)}
    roles: dict[str, str] = {}
    for role, candidates in _HEADER_CANDIDATES.items():
        for candidate in candidates:
            column = by_name.get(candidate)
            if column is not None and column not in roles.values():
                roles[role] = column
                break
    if "prompt" not in roles:
        raise ImportFormatError(
            f"The CSV header {header} has no prompt column. Name the columns with "
            "csv_mapping, for example csv_mapping={'prompt': 'question', 'response': 'answer'}, "
            "or rename the prompt column to instruction, prompt, question or text."
        )
    return CsvColumns(header=header, **roles)


def _csv_record(number: int, row: dict[str, str], columns: CsvColumns) -> ImportRecord:
    prompt = row[columns.prompt]
    extra_input = row[columns.input] if columns.input else ""
    user_text = join_instruction(prompt, extra_input)
    if not user_text.strip():
        raise RowProblem(f"Column {columns.prompt!r} is empty; the record has no prompt.")
    messages = [Message("user", user_text)]
    if columns.system and row[columns.system]:
        messages.insert(0, Message("system", row[columns.system]))
    chosen = row[columns.chosen] if columns.chosen else None
    rejected = row[columns.rejected] if columns.rejected else None
    if (chosen or rejected) and not (chosen and rejected):
        raise RowProblem(
            f"Only one of the columns {columns.chosen!r} and {columns.rejected!r} has text; a preference "
            "record needs both."
        )
    external_id = row[columns.external_id] if columns.external_id else None
    if external_id and len(external_id) > MAX_EXTERNAL_ID_CHARS:
        raise RowProblem(f"Column {columns.external_id!r} is longer than {MAX_EXTERNAL_ID_CHARS} characters.")
    mapped = columns.mapped()
    metadata: dict[str, Any] = {name: value for name, value in row.items() if name not in mapped}
    return ImportRecord(
        record=number,
        messages=messages,
        response=(row[columns.response] or None) if columns.response else None,
        chosen=chosen or None,
        rejected=rejected or None,
        external_id=external_id or None,
        metadata=metadata,
    )


def read_csv_records(
    chunks: Iterator[bytes],
    mapping: dict[str, str] | None,
    max_text_chars: int,
    delimiter: str = ",",
) -> Iterator[ImportRecord | RowError]:
    """Yield one ImportRecord or RowError per CSV record after the header.

    Python's csv module rejects fields over its field_size_limit (131,072 characters by
    default). The limit is raised, process-wide, to twice max_text_chars, so that a longer
    field reaches the length check and gets its RowError with the limit named. Blank lines
    between records are not records and are skipped.
    """
    if csv.field_size_limit() < 2 * max_text_chars:
        csv.field_size_limit(min(2 * max_text_chars, sys.maxsize))
    reader = csv.reader(_iter_text_lines(chunks), delimiter=delimiter, strict=False)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFormatError("The CSV file is empty; the first line must be a header.") from None
    except csv.Error as exc:
        raise ImportFormatError(f"The CSV header cannot be read: {exc}.") from None
    columns = _columns_from_mapping(header, mapping) if mapping else _columns_from_header(header)

    number = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            number += 1
            yield RowError(
                number,
                f"CSV record {number} (ending at line {reader.line_num}) cannot be read: {exc}. A field "
                "may be over twice SFTDESK_MAX_TEXT_CHARS, or a quote may be missing.",
            )
            continue
        if not row:
            continue
        number += 1
        if len(row) != len(header):
            yield RowError(
                number,
                f"CSV record {number} (ending at line {reader.line_num}) has {len(row)} fields, but the "
                f"header has {len(header)} columns. Quote fields that contain the delimiter {delimiter!r}.",
            )
            continue
        try:
            yield _csv_record(number, dict(zip(header, row)), columns)
        except RowProblem as exc:
            yield RowError(number, exc.reason)
