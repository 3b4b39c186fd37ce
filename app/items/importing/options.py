"""Options that control how an import file is read."""

from dataclasses import dataclass

FILE_FORMATS = ("json", "jsonl", "csv", "text")

# Bytes read from the input stream at a time.
CHUNK_BYTES = 1 << 20


@dataclass
class ImportOptions:
    """How to read one import file. Every field left as None is detected from the file."""

    # One of SHAPES; None detects it from the keys of the first record.
    shape: str | None = None
    # One of FILE_FORMATS; None detects it from the file name and the first bytes.
    file_format: str | None = None
    # A Python codec name such as "gb18030". None accepts UTF-8 and BOM-marked UTF-16/32.
    encoding: str | None = None
    # CSV only: maps prompt/instruction, input, response/output, system, chosen, rejected
    # and external_id to column names.
    csv_mapping: dict[str, str] | None = None
    # Longest accepted text of one message or response, in characters (SFTDESK_MAX_TEXT_CHARS).
    max_text_chars: int = 100_000
    # The uploaded file name, used only for its extension (.csv, .tsv, .txt, .gz).
    filename: str | None = None
