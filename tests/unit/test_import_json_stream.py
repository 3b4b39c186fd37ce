"""JSON and JSON Lines splitting: record numbers, broken records and whole-file errors."""

import json
from pathlib import Path

import pytest

from app.items.importing import ImportFormatError, ImportOptions, read_records
from app.items.records import ImportRecord, RowError

LONE_SURROGATE_LINE = '{"instruction": "broken \\ud83d emoji", "output": "x"}'


def import_file(tmp_path: Path, name: str, data: bytes | str, **options) -> list[ImportRecord | RowError]:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    with path.open("rb") as stream:
        return list(read_records(stream, ImportOptions(filename=name, **options)))


def row(text: str) -> str:
    return json.dumps({"instruction": text, "input": "", "output": "ok"}, ensure_ascii=False)


def test_jsonl_record_numbers_count_blank_lines(tmp_path):
    data = f"{row('one')}\n\n   \n{row('four')}\r\n{row('five')}"

    items = import_file(tmp_path, "t.jsonl", data)

    assert [item.record for item in items] == [1, 4, 5]
    assert [item.messages[0].content for item in items] == ["one", "four", "five"]


def test_jsonl_lone_surrogate_rejects_only_its_line(tmp_path):
    data = "\n".join([row("first"), LONE_SURROGATE_LINE, row("third")]) + "\n"

    items = import_file(tmp_path, "t.jsonl", data)

    assert [item.record for item in items if isinstance(item, ImportRecord)] == [1, 3]
    (error,) = [item for item in items if isinstance(item, RowError)]
    assert error.record == 2
    assert "\\ud83d" in error.reason
    assert "surrogate" in error.reason


def test_json_array_lone_surrogate_rejects_only_its_element(tmp_path):
    data = "[\n" + ",\n".join([row("first"), LONE_SURROGATE_LINE, row("third")]) + "\n]"

    items = import_file(tmp_path, "t.json", data)

    assert [item.record for item in items if isinstance(item, ImportRecord)] == [1, 3]
    (error,) = [item for item in items if isinstance(item, RowError)]
    assert error.record == 2
    assert "surrogate" in error.reason


def test_jsonl_unparseable_line_names_parser_message_and_column(tmp_path):
    data = "\n".join([row("first"), '{"instruction": "x", "output": }', row("third")])

    items = import_file(tmp_path, "t.jsonl", data)

    (error,) = [item for item in items if isinstance(item, RowError)]
    assert error.record == 2
    assert error.reason.startswith("Line 2 is not valid JSON: ")
    assert "column 32" in error.reason
    assert len(items) == 3


def test_json_array_trailing_comma_keeps_every_element(tmp_path):
    data = "[\n  " + ",\n  ".join(row(f"r{number}") for number in range(5)) + ",\n]  "

    items = import_file(tmp_path, "t.json", data)

    assert [item.record for item in items if isinstance(item, ImportRecord)] == [1, 2, 3, 4, 5]
    (error,) = [item for item in items if isinstance(item, RowError)]
    assert error.record == 6
    assert "Trailing comma" in error.reason
    assert "5 in all" in error.reason


def test_json_array_broken_element_is_one_row_error(tmp_path):
    elements = [
        row("a"),
        '{"instruction": "b" "output": "x"}',
        '{"instruction": "c", "history": [1, }',
        '{"instruction": "d"]}',
        row("e"),
    ]
    data = "[\n" + ",\n".join(elements) + "\n]\n"

    items = import_file(tmp_path, "t.json", data)

    assert [item.messages[0].content for item in items if isinstance(item, ImportRecord)] == ["a", "e"]
    errors = [item for item in items if isinstance(item, RowError)]
    assert [error.record for error in errors] == [2, 3, 4]
    assert errors[0].reason.startswith("Element 2 at line 3 is not valid JSON")


def test_json_array_elements_with_braces_in_strings(tmp_path):
    texts = ["code: if (x) { y(); }, z", '}, {"instruction": "not a key"', "a ] b }"]
    data = json.dumps([{"instruction": text, "output": "{}"} for text in texts])

    items = import_file(tmp_path, "t.json", data)

    assert [item.messages[0].content for item in items] == texts


def test_json_array_nested_conversation_elements(tmp_path):
    rows = [
        {"conversations": [{"from": "human", "value": f"q{number}"}, {"from": "gpt", "value": "a}, {"}]}
        for number in range(50)
    ]

    items = import_file(tmp_path, "t.json", json.dumps(rows, indent=2))

    assert [item.messages[0].content for item in items] == [f"q{number}" for number in range(50)]


def test_truncated_json_array_reports_incomplete_element(tmp_path):
    data = "[" + row("a") + ", " + row("b")[:-10]

    items = import_file(tmp_path, "t.json", data)

    assert isinstance(items[0], ImportRecord)
    assert isinstance(items[1], RowError)
    assert "incomplete" in items[1].reason


def test_unclosed_json_array_is_reported(tmp_path):
    items = import_file(tmp_path, "t.json", "[" + row("a"))

    assert isinstance(items[0], ImportRecord)
    assert "not closed" in items[1].reason


def test_jsonl_named_json_is_detected_by_content(tmp_path):
    data = "\n".join(
        json.dumps({"question": f"问题{number}", "std_answer": "答"}, ensure_ascii=False) for number in range(3)
    )

    path = tmp_path / "belle_eval_set.json"
    path.write_text(data, encoding="utf-8")
    with path.open("rb") as stream:
        reader = read_records(stream, ImportOptions(filename=path.name))
        items = list(reader)

    assert reader.file_format == "jsonl"
    assert [item.record for item in items] == [1, 2, 3]


def test_pretty_printed_single_object_is_one_record(tmp_path):
    data = json.dumps({"instruction": "Only one", "output": "yes"}, indent=4)

    (record,) = import_file(tmp_path, "one.json", data)

    assert record.messages[0].content == "Only one"


def test_not_json_raises_with_file_format_hint(tmp_path):
    with pytest.raises(ImportFormatError) as caught:
        import_file(tmp_path, "notes.json", "Hello there, this is prose.")

    message = str(caught.value)
    assert "'Hello there, this is'" in message
    assert "file_format='text'" in message


def test_top_level_number_raises(tmp_path):
    with pytest.raises(ImportFormatError, match="not JSON or JSON Lines"):
        import_file(tmp_path, "n.json", "42")


def test_empty_file_raises(tmp_path):
    with pytest.raises(ImportFormatError, match="empty"):
        import_file(tmp_path, "e.jsonl", " \n\n")


def test_long_response_is_rejected_naming_limit_and_setting(tmp_path):
    data = "\n".join([row("short"), json.dumps({"instruction": "long", "output": "y" * 200_000})])

    items = import_file(tmp_path, "t.jsonl", data)

    error = items[1]
    assert isinstance(error, RowError)
    assert "200,000 characters" in error.reason
    assert "100,000" in error.reason
    assert "SFTDESK_MAX_TEXT_CHARS" in error.reason
    assert "invalid format" not in error.reason.lower()


def test_max_text_chars_option_raises_the_limit(tmp_path):
    data = json.dumps({"instruction": "long", "output": "y" * 200_000})

    (record,) = import_file(tmp_path, "t.jsonl", data, max_text_chars=250_000)

    assert len(record.response) == 200_000


def test_non_object_records_are_row_errors(tmp_path):
    items = import_file(tmp_path, "t.json", "[" + row("a") + ", 7, null]")

    assert [type(item) for item in items] == [ImportRecord, RowError, RowError]
    assert items[1].reason == "The record is a number, but the alpaca shape needs a JSON object."
