"""Encodings, byte order marks, gzip and byte-exact text on import."""

import codecs
import gzip
import json
from pathlib import Path

import pytest

from app.items import importing
from app.items.importing import ImportFormatError, ImportOptions, read_records
from app.items.records import ImportRecord, Message, RowError

TRICKY_TEXTS = [
    "🧪 Combine the notes",
    "Café 👩‍🔬 résumé — done",
    "مرحبا 👋 hello",
    "e\u0301 combining acute, 中文, 日本語, 한국어",
    "line one\r\nline two\n\ttabbed",
    "  leading and trailing spaces  ",
]


def import_file(tmp_path: Path, name: str, data: bytes, **options) -> list[ImportRecord | RowError]:
    path = tmp_path / name
    path.write_bytes(data)
    with path.open("rb") as stream:
        return list(read_records(stream, ImportOptions(filename=name, **options)))


def alpaca_jsonl(texts: list[str]) -> str:
    return "".join(json.dumps({"instruction": text, "output": text}, ensure_ascii=False) + "\n" for text in texts)


def test_utf8_text_survives_byte_for_byte(tmp_path):
    items = import_file(tmp_path, "t.jsonl", alpaca_jsonl(TRICKY_TEXTS).encode("utf-8"))

    assert [item.messages[0].content for item in items] == TRICKY_TEXTS
    assert [item.response for item in items] == TRICKY_TEXTS


def test_escaped_non_ascii_reads_as_the_same_text(tmp_path):
    data = "".join(json.dumps({"instruction": text, "output": "x"}) + "\n" for text in TRICKY_TEXTS)

    items = import_file(tmp_path, "t.jsonl", data.encode("ascii"))

    assert [item.messages[0].content for item in items] == TRICKY_TEXTS


def test_utf8_bom_is_removed(tmp_path):
    data = codecs.BOM_UTF8 + alpaca_jsonl(["Café"]).encode("utf-8")

    (record,) = import_file(tmp_path, "t.jsonl", data)

    assert record.messages == [Message("user", "Café")]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_with_bom(tmp_path, codec):
    text = alpaca_jsonl(TRICKY_TEXTS[:3])
    data = text.encode(codec)
    if codec == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data

    items = import_file(tmp_path, "t.jsonl", data)

    assert [item.messages[0].content for item in items] == TRICKY_TEXTS[:3]


def test_utf16_without_bom_is_recognised(tmp_path):
    data = json.dumps([{"instruction": "Grüße", "output": "ok"}], ensure_ascii=False).encode("utf-16-le")

    (record,) = import_file(tmp_path, "t.json", data)

    assert record.messages[0].content == "Grüße"


def test_gbk_csv_imports_with_encoding_option(tmp_path):
    data = "ask,answer\n高血压患者能吃党参吗？,可以适量服用。\n".encode("gbk")

    (record,) = import_file(tmp_path, "medical.csv", data, encoding="gbk")

    assert record.messages == [Message("user", "高血压患者能吃党参吗？")]
    assert record.response == "可以适量服用。"


def test_gbk_without_encoding_option_names_option_and_offset(tmp_path):
    data = "ask,answer\n高血压,可以\n".encode("gbk")

    with pytest.raises(ImportFormatError) as caught:
        import_file(tmp_path, "medical.csv", data)

    message = str(caught.value)
    assert "encoding option" in message
    assert "byte offset 11" in message


def test_unknown_encoding_name_raises(tmp_path):
    with pytest.raises(ImportFormatError, match="Unknown encoding 'klingon'"):
        import_file(tmp_path, "t.jsonl", b'{"instruction": "x"}\n', encoding="klingon")


def test_invalid_utf8_late_in_file_raises(tmp_path):
    good = alpaca_jsonl([f"row {number}" for number in range(3)]).encode("utf-8")
    path = tmp_path / "t.jsonl"
    path.write_bytes(good + b'{"instruction": "caf\xe9"}\n')
    seen: list[ImportRecord | RowError] = []

    with path.open("rb") as stream, pytest.raises(ImportFormatError) as caught:
        seen.extend(read_records(stream, ImportOptions()))

    assert f"byte offset {len(good) + 20}" in str(caught.value)
    assert len(seen) <= 3


def test_gzip_is_detected_by_magic_bytes(tmp_path):
    data = gzip.compress(alpaca_jsonl(["压缩的 🧪"]).encode("utf-8"))

    (record,) = import_file(tmp_path, "upload.bin", data)

    assert record.messages[0].content == "压缩的 🧪"


def test_damaged_gzip_raises(tmp_path):
    data = gzip.compress(alpaca_jsonl(["x" * 1000]).encode("utf-8"))[:40]

    with pytest.raises(ImportFormatError, match="gzip"):
        import_file(tmp_path, "upload.jsonl.gz", data)


def test_tiny_chunks_give_the_same_records(tmp_path, monkeypatch):
    rows = [{"instruction": text, "input": "", "output": text + " ✓"} for text in TRICKY_TEXTS * 3]
    array = json.dumps(rows, ensure_ascii=False, indent=2).encode("utf-8")
    lines = alpaca_jsonl(TRICKY_TEXTS * 3).encode("utf-16")
    table = ("prompt,response\r\n" + "".join(f'"{text}","{text} ✓"\r\n' for text in TRICKY_TEXTS)).encode("utf-8")
    expected_array = import_file(tmp_path, "a.json", array)
    expected_lines = import_file(tmp_path, "l.jsonl", lines)
    expected_table = import_file(tmp_path, "t.csv", table)

    monkeypatch.setattr(importing, "CHUNK_BYTES", 5)

    assert import_file(tmp_path, "a.json", array) == expected_array
    assert import_file(tmp_path, "l.jsonl", lines) == expected_lines
    assert import_file(tmp_path, "t.csv", table) == expected_table
    assert len(expected_array) == len(rows)
    assert [record.messages[0].content for record in expected_table] == TRICKY_TEXTS
