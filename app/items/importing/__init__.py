"""Read import files (JSON, JSONL, CSV, plain text; optionally gzip) into ImportRecords.

`read_records` streams: it reads the binary stream in chunks and yields one ImportRecord
(or several, for self-instruct tasks) or one RowError per source record. Problems with
one record never stop the file. Problems with the whole file raise ImportFormatError.
"""

import itertools
import os
from collections.abc import Iterator
from typing import BinaryIO

from app.items.importing.checks import check_record
from app.items.importing.csv_reader import read_csv_records, read_text_lines
from app.items.importing.encoding import iter_utf8_chunks
from app.items.importing.errors import ImportFormatError, RowProblem
from app.items.importing.fields import describe_type
from app.items.importing.json_stream import ParsedValue, iter_json_array, iter_json_documents, iter_jsonl
from app.items.importing.options import CHUNK_BYTES, FILE_FORMATS, ImportOptions
from app.items.importing.shapes import SHAPE_HELP, SHAPE_READERS, SUPPORTED_SHAPES, detect_shape
from app.items.records import ImportRecord, Message, RowError

__all__ = [
    "FILE_FORMATS",
    "SHAPES",
    "ImportFormatError",
    "ImportOptions",
    "RecordStream",
    "read_records",
]

SHAPES = SUPPORTED_SHAPES

# Shapes whose fields a CSV header can name; the CSV reader maps their columns itself.
_CSV_SHAPES = (None, "csv", "alpaca", "prompt_completion", "preference", "question_answer", "text")
_WHITESPACE = b" \t\r\n"


class RecordStream:
    """The iterator that read_records returns.

    `file_format` and `shape` are None until they are known: the format after the first
    chunk has been read, the shape after the first record that decides it.
    """

    def __init__(self, stream: BinaryIO, options: ImportOptions) -> None:
        self.options = options
        self.file_format: str | None = None
        self.shape: str | None = options.shape
        self._records = self._read(stream)

    def __iter__(self) -> "RecordStream":
        return self

    def __next__(self) -> ImportRecord | RowError:
        return next(self._records)

    def _read(self, stream: BinaryIO) -> Iterator[ImportRecord | RowError]:
        options = self.options
        _check_options(options)
        chunks = iter_utf8_chunks(stream, options.encoding, CHUNK_BYTES)
        head = _read_head(chunks)
        self.file_format = _detect_file_format(head, options)
        chunks = itertools.chain([head], chunks)

        if self.file_format == "csv":
            self.shape = "csv"
            delimiter = "\t" if _extension(options.filename) == ".tsv" else ","
            records: Iterator[ImportRecord | RowError] = read_csv_records(
                chunks, options.csv_mapping, options.max_text_chars, delimiter
            )
            yield from _checked(records, options.max_text_chars)
        elif self.file_format == "text":
            self.shape = "text"
            lines = (
                ImportRecord(record=number, messages=[Message("user", line)], response=None)
                for number, line in read_text_lines(chunks)
            )
            yield from _checked(lines, options.max_text_chars)
        else:
            yield from self._convert(_json_values(chunks, head, self.file_format))

    def _convert(self, values: Iterator[ParsedValue]) -> Iterator[ImportRecord | RowError]:
        max_text_chars = self.options.max_text_chars
        reader = SHAPE_READERS[self.shape] if self.shape else None
        for item in values:
            if isinstance(item, RowError):
                yield item
                continue
            number, value = item
            if reader is None:
                shape = detect_shape(value)
                if shape is None:
                    if isinstance(value, dict):
                        raise ImportFormatError(
                            f"Record {number} has the fields {sorted(value)[:20]}, which match no supported "
                            f"shape. {SHAPE_HELP} Rename the fields, or name the shape in the shape option."
                        )
                    yield RowError(
                        number, f"Record {number} is {describe_type(value)}; each record must be a JSON object."
                    )
                    continue
                self.shape = shape
                reader = SHAPE_READERS[shape]
            try:
                records = reader(value, number)
                for record in records:
                    check_record(record, max_text_chars)
            except RowProblem as exc:
                yield RowError(number, exc.reason)
                continue
            yield from records


def read_records(stream: BinaryIO, options: ImportOptions) -> RecordStream:
    """Read `stream` as an import file and return an iterator of ImportRecord and RowError.

    Nothing is read until the first call to next(). ImportFormatError is raised from next():
    before the first record for an unknown format, encoding or shape, and later for an
    encoding error further into the file.
    """
    return RecordStream(stream, options)


def _check_options(options: ImportOptions) -> None:
    if options.shape is not None and options.shape not in SHAPES:
        raise ImportFormatError(
            f"Unknown shape {options.shape!r} in the shape option. Use one of: {', '.join(SHAPES)}."
        )
    if options.file_format is not None and options.file_format not in FILE_FORMATS:
        raise ImportFormatError(
            f"Unknown file format {options.file_format!r} in the file_format option. Use one of: {', '.join(FILE_FORMATS)}."
        )
    if options.max_text_chars < 1:
        raise ImportFormatError(f"max_text_chars must be at least 1, got {options.max_text_chars}.")


def _read_head(chunks: Iterator[bytes]) -> bytes:
    """Read up to the first non-whitespace byte, and on to the end of its line when it is '{'."""
    head = b""
    for chunk in chunks:
        head += chunk
        stripped = head.lstrip(_WHITESPACE)
        if stripped and (not stripped.startswith(b"{") or b"\n" in stripped):
            break
    return head


def _extension(filename: str | None) -> str:
    if not filename:
        return ""
    return os.path.splitext(filename.lower().removesuffix(".gz"))[1]


def _detect_file_format(head: bytes, options: ImportOptions) -> str:
    """Choose json, jsonl, csv or text from the options, the file name and the first bytes."""
    stripped = head.lstrip(_WHITESPACE)
    if options.file_format is not None:
        file_format = options.file_format
    elif options.csv_mapping or options.shape == "csv" or _extension(options.filename) in (".csv", ".tsv"):
        file_format = "csv"
    elif _extension(options.filename) == ".txt":
        file_format = "text"
    elif stripped.startswith(b"["):
        file_format = "json"
    elif stripped.startswith(b"{"):
        # A first line that is a whole object means JSON Lines; a pretty-printed object
        # starts with a line such as "{".
        first_line = stripped.split(b"\n", 1)[0].rstrip(_WHITESPACE)
        file_format = "jsonl" if first_line.endswith(b"}") else "json"
    elif options.shape == "text" and stripped:
        file_format = "text"
    elif not stripped:
        raise ImportFormatError("The file is empty.")
    else:
        preview = stripped[:20].decode("utf-8", "replace")
        raise ImportFormatError(
            f"The file is not JSON or JSON Lines: it starts with {preview!r}, not '[' or '{{'. "
            "For CSV or plain text (one prompt per line), name the file .csv or .txt, or pass "
            "file_format='csv' or file_format='text'."
        )

    if file_format == "csv" and options.shape not in _CSV_SHAPES:
        raise ImportFormatError(
            f"The {options.shape} shape cannot be read from CSV. Use JSON or JSON Lines for it, or "
            "map the CSV columns with csv_mapping."
        )
    if file_format != "csv" and options.shape == "csv":
        raise ImportFormatError(f"The csv shape needs a CSV file, but file_format is {file_format!r}.")
    if file_format == "text" and options.shape not in (None, "text"):
        raise ImportFormatError(
            f"A plain-text file contains one prompt per line, so it cannot have the {options.shape} shape. "
            "Use JSON or JSON Lines for that shape."
        )
    return file_format


def _json_values(chunks: Iterator[bytes], head: bytes, file_format: str) -> Iterator[ParsedValue]:
    if file_format == "jsonl":
        return iter_jsonl(chunks)
    first = head.lstrip(_WHITESPACE)[:1]
    if first == b"[":
        return iter_json_array(chunks)
    if first == b"{":
        return iter_json_documents(chunks)
    if not first:
        raise ImportFormatError("The file is empty.")
    raise ImportFormatError(
        f"The file is not a JSON array or object: it starts with {first.decode('utf-8', 'replace')!r}. "
        "A JSON import file holds an array of records, one object, or one object per line (JSON Lines)."
    )


def _checked(records: Iterator[ImportRecord | RowError], max_text_chars: int) -> Iterator[ImportRecord | RowError]:
    for record in records:
        if isinstance(record, ImportRecord):
            try:
                check_record(record, max_text_chars)
            except RowProblem as exc:
                yield RowError(record.record, exc.reason)
                continue
        yield record
