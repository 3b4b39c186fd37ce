"""CSV (RFC 4180) and plain-text import files."""

import csv
import io
from pathlib import Path

import pytest

from app.items.importing import ImportFormatError, ImportOptions, read_records
from app.items.records import ImportRecord, Message, RowError


def import_file(tmp_path: Path, name: str, data: bytes | str, **options) -> list[ImportRecord | RowError]:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    with path.open("rb") as stream:
        return list(read_records(stream, ImportOptions(filename=name, **options)))


def csv_text(rows: list[list[str]], line_ending: str = "\r\n") -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=line_ending).writerows(rows)
    return buffer.getvalue()


def test_csv_commas_quotes_and_line_breaks_survive(tmp_path):
    prompts = ['Hello, "world"', "Line one\nLine two", "CRLF inside\r\nthe field", "👩‍🔬 مرحبا"]
    data = csv_text(
        [["instruction", "output"], *[[prompt, f"answer {number}"] for number, prompt in enumerate(prompts)]]
    )

    items = import_file(tmp_path, "p.csv", data)

    assert [item.messages[0].content for item in items] == prompts
    assert [item.response for item in items] == [f"answer {number}" for number in range(4)]
    assert [item.record for item in items] == [1, 2, 3, 4]


def test_csv_header_names_are_detected(tmp_path):
    data = csv_text([["id", "Instruction", "Input", "Output", "topic"], ["q1", "Sum", "2 and 3", "5", "maths"]], "\n")

    (record,) = import_file(tmp_path, "p.csv", data)

    assert record.messages == [Message("user", "Sum\n\n2 and 3")]
    assert record.response == "5"
    assert record.external_id == "q1"
    assert record.metadata == {"topic": "maths"}


def test_csv_question_answer_headers(tmp_path):
    data = csv_text([["department", "title", "ask", "answer"], ["内科", "标题", "问题？", "回答。"]])

    (record,) = import_file(tmp_path, "p.csv", data)

    assert record.messages == [Message("user", "问题？")]
    assert record.response == "回答。"
    assert record.metadata == {"department": "内科", "title": "标题"}


def test_csv_mapping_names_the_columns(tmp_path):
    data = csv_text([["a", "b", "c"], ["prompt text", "reply", "sys"]])

    (record,) = import_file(tmp_path, "p.csv", data, csv_mapping={"prompt": "a", "response": "b", "system": "c"})

    assert record.messages == [Message("system", "sys"), Message("user", "prompt text")]
    assert record.response == "reply"


def test_csv_mapping_with_unknown_column_raises(tmp_path):
    data = csv_text([["a", "b"], ["x", "y"]])

    with pytest.raises(ImportFormatError, match="'question'"):
        import_file(tmp_path, "p.csv", data, csv_mapping={"prompt": "question"})


def test_csv_without_prompt_column_names_csv_mapping(tmp_path):
    data = csv_text([["first", "last"], ["John", "Doe"]])

    with pytest.raises(ImportFormatError) as caught:
        import_file(tmp_path, "p.csv", data)

    assert "csv_mapping" in str(caught.value)
    assert "['first', 'last']" in str(caught.value)


def test_csv_field_above_python_default_limit(tmp_path):
    long_prompt = "x" * 150_000
    data = csv_text([["prompt", "response"], [long_prompt, "ok"]])

    (record,) = import_file(tmp_path, "p.csv", data, max_text_chars=200_000)

    assert record.messages[0].content == long_prompt


def test_csv_field_over_limit_is_row_error(tmp_path):
    data = csv_text([["prompt", "response"], ["short", "ok"], ["y" * 150_000, "ok"]])

    items = import_file(tmp_path, "p.csv", data)

    assert isinstance(items[0], ImportRecord)
    assert items[1].record == 2
    assert "150,000 characters" in items[1].reason
    assert "SFTDESK_MAX_TEXT_CHARS" in items[1].reason


def test_csv_wrong_field_count_is_row_error(tmp_path):
    data = "prompt,response\nfine,ok\ntoo,many,fields\nalso fine,ok\n"

    items = import_file(tmp_path, "p.csv", data)

    assert [type(item) for item in items] == [ImportRecord, RowError, ImportRecord]
    assert "3 fields" in items[1].reason


def test_csv_preference_columns(tmp_path):
    data = csv_text([["prompt", "chosen", "rejected"], ["Pick", "good", "bad"], ["Pick again", "good", ""]])

    items = import_file(tmp_path, "p.csv", data)

    assert (items[0].chosen, items[0].rejected) == ("good", "bad")
    assert isinstance(items[1], RowError)
    assert "needs both" in items[1].reason


def test_tsv_uses_tabs(tmp_path):
    data = "prompt\tresponse\nA, with comma\tB\n"

    (record,) = import_file(tmp_path, "p.tsv", data)

    assert record.messages[0].content == "A, with comma"
    assert record.response == "B"


def test_utf16_csv_with_bom(tmp_path):
    data = "text,label\r\nAAA,Positive\r\nBBB,Negative".encode("utf-16")

    items = import_file(tmp_path, "doccano.csv", data)

    assert [item.messages[0].content for item in items] == ["AAA", "BBB"]
    assert [item.metadata for item in items] == [{"label": "Positive"}, {"label": "Negative"}]


def test_text_file_one_prompt_per_line(tmp_path):
    data = "First prompt\r\n\n  Second prompt with spaces  \nThird 🧪"

    items = import_file(tmp_path, "prompts.txt", data)

    assert [item.record for item in items] == [1, 3, 4]
    assert [item.messages[0].content for item in items] == ["First prompt", "  Second prompt with spaces  ", "Third 🧪"]
    assert all(item.response is None for item in items)


def test_text_file_format_option(tmp_path):
    items = import_file(tmp_path, "upload.bin", "Just a prompt\n", file_format="text")

    assert items[0].messages == [Message("user", "Just a prompt")]
