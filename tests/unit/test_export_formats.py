"""Export writers: layout, determinism, raw non-ASCII text and round trips through the importer."""

import json
from pathlib import Path

import pytest

from app.items.importing import ImportOptions, read_records
from app.items.records import ImportRecord, Message
from app.snapshots.formats import EXPORT_FORMATS, DatasetWriter, ExportRow, can_express, file_name, write_rows

TRICKY_TEXTS = [
    "🧪 Combine the notes",
    "Café 👩‍🔬 résumé — done",
    "مرحبا 👋 hello",
    "<img src=x onerror=\"document.title='x'\">Summarise this",
    "<script>window.y=1</script>ok",
    '中文 with\r\nCRLF and "quotes" and \\backslash\\',
    "e\u0301\u2028line separator",
]


def export_file(tmp_path: Path, fmt: str, rows: list[ExportRow], split: str = "train") -> Path:
    path = tmp_path / file_name(fmt, split)
    with path.open("wb") as out:
        write_rows(fmt, rows, out)
    return path


def reimport(path: Path) -> list[ImportRecord]:
    with path.open("rb") as stream:
        items = list(read_records(stream, ImportOptions(filename=path.name)))
    assert all(isinstance(item, ImportRecord) for item in items)
    return items


def sft_row(text: str) -> ExportRow:
    return ExportRow(messages=[Message("system", f"system {text}"), Message("user", text)], response=f"reply {text}")


def test_file_names():
    assert file_name("messages", "train") == "train.messages.jsonl"
    assert file_name("alpaca", "validation") == "validation.alpaca.json"
    assert file_name("sharegpt", "train") == "train.sharegpt.json"
    with pytest.raises(ValueError, match="Unknown export format"):
        file_name("parquet-ish", "train")


def test_messages_line_layout_is_exact(tmp_path):
    row = ExportRow(messages=[Message("user", "中文?")], response="是的")

    path = export_file(tmp_path, "messages", [row])

    expected = '{"messages":[{"role":"user","content":"中文?"},{"role":"assistant","content":"是的"}]}\n'
    assert path.read_bytes() == expected.encode("utf-8")


def test_non_ascii_is_written_raw_in_every_format(tmp_path):
    row = ExportRow(messages=[Message("user", "中文 🧪")], response="中文", chosen="中文 a", rejected="中文 b")

    for fmt in EXPORT_FORMATS:
        data = export_file(tmp_path, fmt, [row]).read_bytes()
        assert "中文".encode() in data, fmt
        assert b"\\u" not in data, fmt


def test_same_rows_give_identical_bytes(tmp_path):
    rows = [sft_row(text) for text in TRICKY_TEXTS]
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()

    for fmt in ("messages", "prompt_completion", "alpaca", "sharegpt"):
        first = export_file(tmp_path / "one", fmt, rows).read_bytes()
        second = export_file(tmp_path / "two", fmt, rows).read_bytes()
        assert first == second, fmt
        assert b"\r" not in first, fmt


@pytest.mark.parametrize("fmt", ["messages", "prompt_completion", "alpaca", "sharegpt"])
def test_round_trip_keeps_text_byte_for_byte(tmp_path, fmt):
    rows = [sft_row(text) for text in TRICKY_TEXTS]

    back = reimport(export_file(tmp_path, fmt, rows))

    assert [record.messages for record in back] == [row.messages for row in rows]
    assert [record.response for record in back] == [row.response for row in rows]


def test_preference_round_trip(tmp_path):
    rows = [
        ExportRow(messages=[Message("user", text)], chosen=f"good {text}", rejected=f"bad {text}")
        for text in TRICKY_TEXTS
    ]

    back = reimport(export_file(tmp_path, "preference", rows))

    assert [(record.chosen, record.rejected) for record in back] == [(row.chosen, row.rejected) for row in rows]
    assert [record.messages for record in back] == [row.messages for row in rows]


def test_alpaca_array_with_system_and_history(tmp_path):
    row = ExportRow(
        messages=[
            Message("system", "Be brief."),
            Message("user", "Q1"),
            Message("assistant", "A1"),
            Message("user", "Q2"),
        ],
        response="A2",
    )

    document = json.loads(export_file(tmp_path, "alpaca", [row]).read_text(encoding="utf-8"))

    assert document == [
        {"instruction": "Q2", "input": "", "output": "A2", "system": "Be brief.", "history": [["Q1", "A1"]]}
    ]


def test_sharegpt_tool_turns_and_tools_string(tmp_path):
    tools = '[{"name": "lookup", "parameters": {}}]'
    row = ExportRow(
        messages=[
            Message("user", "Find"),
            Message("function_call", '{"name": "lookup", "arguments": {"q": "x"}}'),
            Message("observation", "found"),
        ],
        response="Done",
        tools=tools,
    )

    (document,) = json.loads(export_file(tmp_path, "sharegpt", [row]).read_text(encoding="utf-8"))

    assert [turn["from"] for turn in document["conversations"]] == ["human", "function_call", "observation", "gpt"]
    assert document["tools"] == tools


def test_messages_tool_calls_round_trip(tmp_path):
    call = '{"name": "lookup", "arguments": {"q": "中文"}}'
    row = ExportRow(
        messages=[Message("user", "Find"), Message("function_call", call), Message("observation", "found")],
        response="Done",
        tools='[{"name": "lookup"}]',
    )
    path = export_file(tmp_path, "messages", [row])

    document = json.loads(path.read_text(encoding="utf-8"))
    (back,) = reimport(path)

    assert document["messages"][1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": "lookup", "arguments": {"q": "中文"}}}],
    }
    assert document["messages"][2] == {"role": "tool", "content": "found"}
    assert document["tools"] == [{"name": "lookup"}]
    assert back.messages == row.messages


def test_can_express_rules():
    plain = ExportRow(messages=[Message("user", "Q")], response="A")
    no_response = ExportRow(messages=[Message("user", "Q")])
    pair = ExportRow(messages=[Message("user", "Q")], chosen="good", rejected="bad")
    with_tool_turn = ExportRow(messages=[Message("user", "Q"), Message("observation", "x")], response="A")
    odd_call = ExportRow(messages=[Message("user", "Q"), Message("function_call", "not json")], response="A")

    assert all(can_express(fmt, plain) for fmt in ("messages", "prompt_completion", "alpaca", "sharegpt"))
    assert not can_express("preference", plain)
    assert not any(can_express(fmt, no_response) for fmt in EXPORT_FORMATS)
    assert can_express("preference", pair)
    assert not can_express("alpaca", with_tool_turn)
    assert can_express("sharegpt", with_tool_turn)
    assert not can_express("messages", odd_call)
    assert can_express("sharegpt", odd_call)


def test_write_rows_rejects_unexpressible_row(tmp_path):
    row = ExportRow(messages=[Message("user", "Q")])

    with pytest.raises(ValueError, match="can_express"):
        export_file(tmp_path, "messages", [row])


def test_empty_exports_are_valid_files(tmp_path):
    assert json.loads(export_file(tmp_path, "alpaca", []).read_text(encoding="utf-8")) == []
    assert export_file(tmp_path, "messages", []).read_bytes() == b""


def test_dataset_writer_matches_write_rows(tmp_path):
    rows = [sft_row(text) for text in TRICKY_TEXTS]
    expected = export_file(tmp_path, "sharegpt", rows).read_bytes()
    path = tmp_path / "incremental.json"

    with path.open("wb") as out:
        writer = DatasetWriter("sharegpt", out)
        for row in rows:
            writer.write(row)
        writer.close()

    assert path.read_bytes() == expected
    assert writer.rows == len(rows)


def test_messages_may_be_stored_dicts(tmp_path):
    row = ExportRow(messages=[{"role": "user", "content": "Q"}], response="A")

    (back,) = reimport(export_file(tmp_path, "messages", [row]))

    assert back.messages == [Message("user", "Q")]
