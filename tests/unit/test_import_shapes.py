"""Shape detection and conversion: each source shape becomes the right ImportRecords."""

import json
from pathlib import Path

import pytest

from app.items.importing import ImportFormatError, ImportOptions, read_records
from app.items.records import ImportRecord, Message, RowError

XSS_IMG = "<img src=x onerror=\"document.title='x'\">Summarise this"
XSS_SCRIPT = "<script>window.y=1</script>ok"


def import_file(tmp_path: Path, name: str, data: bytes | str, **options) -> list[ImportRecord | RowError]:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    with path.open("rb") as stream:
        return list(read_records(stream, ImportOptions(filename=name, **options)))


def jsonl(*rows) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def records(items) -> list[ImportRecord]:
    return [item for item in items if isinstance(item, ImportRecord)]


def errors(items) -> list[RowError]:
    return [item for item in items if isinstance(item, RowError)]


def test_alpaca_joins_instruction_and_input(tmp_path):
    items = import_file(
        tmp_path,
        "a.json",
        json.dumps(
            [{"instruction": "Translate", "input": "Bonjour", "output": "Hello", "id": "row-1", "category": "mt"}]
        ),
    )

    (record,) = items
    assert record.messages == [Message("user", "Translate\n\nBonjour")]
    assert record.response == "Hello"
    assert record.external_id == "row-1"
    assert record.metadata == {"category": "mt"}
    assert record.record == 1


def test_alpaca_keeps_xss_strings_verbatim(tmp_path):
    items = import_file(tmp_path, "a.jsonl", jsonl({"instruction": XSS_IMG, "input": "", "output": XSS_SCRIPT}))

    (record,) = items
    assert record.messages[0].content == XSS_IMG
    assert record.response == XSS_SCRIPT


def test_alpaca_empty_output_gives_no_response(tmp_path):
    items = import_file(tmp_path, "a.jsonl", jsonl({"instruction": "Write a haiku", "input": "", "output": ""}))

    (record,) = items
    assert record.response is None


def test_alpaca_system_and_history(tmp_path):
    row = {
        "instruction": "And now?",
        "output": "Done.",
        "system": "Be brief.",
        "history": [["First question", "First answer"]],
    }
    (record,) = import_file(tmp_path, "a.jsonl", jsonl(row))

    assert record.messages == [
        Message("system", "Be brief."),
        Message("user", "First question"),
        Message("assistant", "First answer"),
        Message("user", "And now?"),
    ]


def test_alpaca_missing_input_and_empty_history_string(tmp_path):
    rows = [{"instruction": "One", "output": "1"}, {"input": "", "history": "", "instruction": "Two", "output": "2"}]

    items = import_file(tmp_path, "a.json", json.dumps(rows))

    assert [record.messages[0].content for record in records(items)] == ["One", "Two"]
    assert errors(items) == []


def test_alpaca_number_output_is_row_error(tmp_path):
    rows = [
        {"instruction": "ok", "output": "fine"},
        {"instruction": "bad", "output": 42},
        {"instruction": "ok2", "output": "x"},
    ]

    items = import_file(tmp_path, "a.json", json.dumps(rows))

    (error,) = errors(items)
    assert error.record == 2
    assert "'output'" in error.reason
    assert "a number" in error.reason
    assert [record.record for record in records(items)] == [1, 3]


def test_sharegpt_roles_system_and_tools(tmp_path):
    tools = '[{"name": "lookup", "parameters": {}}]'
    row = {
        "conversations": [
            {"from": "human", "value": "Find it"},
            {"from": "function_call", "value": '{"name": "lookup", "arguments": {"q": "it"}}'},
            {"from": "observation", "value": '{"found": true}'},
            {"from": "gpt", "value": "Found."},
        ],
        "system": "You can call tools.",
        "tools": tools,
    }
    (record,) = import_file(tmp_path, "s.json", json.dumps([row]))

    assert [message.role for message in record.messages] == ["system", "user", "function_call", "observation"]
    assert record.messages[2].content == '{"name": "lookup", "arguments": {"q": "it"}}'
    assert record.response == "Found."
    assert record.tools == tools


def test_sharegpt_ending_with_user_needs_response(tmp_path):
    row = {
        "conversations": [
            {"from": "human", "value": "Hi"},
            {"from": "gpt", "value": "Hello"},
            {"from": "human", "value": "Bye?"},
        ]
    }

    (record,) = import_file(tmp_path, "s.jsonl", jsonl(row))

    assert record.response is None
    assert record.messages[-1] == Message("user", "Bye?")


def test_sharegpt_unknown_role_rejects_only_that_row(tmp_path):
    good = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
    bad = {"conversations": [{"from": "wizard", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}

    items = import_file(tmp_path, "s.jsonl", jsonl(good, bad, good))

    (error,) = errors(items)
    assert error.record == 2
    assert "'wizard'" in error.reason
    assert len(records(items)) == 2


def test_sharegpt_null_value_is_row_error(tmp_path):
    bad = {"conversations": [{"from": "human", "value": None}, {"from": "gpt", "value": "Hello"}]}

    (error,) = import_file(tmp_path, "s.jsonl", jsonl(bad))

    assert isinstance(error, RowError)
    assert "null" in error.reason
    assert "conversations[0].value" in error.reason


def test_messages_content_parts_are_joined(tmp_path):
    row = {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "value": "Part one. "}, {"type": "text", "text": "Part two."}],
            },
            {"role": "assistant", "content": [{"type": "text", "value": "Answer"}], "loss_weight": 1.0},
        ]
    }
    (record,) = import_file(tmp_path, "m.jsonl", jsonl(row))

    assert record.messages == [Message("user", "Part one. Part two.")]
    assert record.response == "Answer"


def test_messages_image_part_is_row_error(tmp_path):
    row = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x.png"}}]}]}

    (error,) = import_file(tmp_path, "m.jsonl", jsonl(row))

    assert isinstance(error, RowError)
    assert "'image_url'" in error.reason
    assert "text only" in error.reason


def test_messages_openai_tool_calls_become_function_call(tmp_path):
    row = {
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}],
            },
            {"role": "tool", "content": "4 °C"},
            {"role": "assistant", "content": "It is 4 °C."},
        ],
        "tools": [{"type": "function", "function": {"name": "weather"}}],
    }
    (record,) = import_file(tmp_path, "m.jsonl", jsonl(row))

    assert record.messages[1] == Message("function_call", '{"name": "weather", "arguments": {"city": "Oslo"}}')
    assert record.messages[2] == Message("observation", "4 °C")
    assert record.response == "It is 4 °C."
    assert json.loads(record.tools) == row["tools"]


def test_messages_reasoning_part_becomes_think_block(tmp_path):
    row = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "value": "2+2?"}]},
            {
                "role": "assistant",
                "content": [{"type": "reasoning", "value": "Add them."}, {"type": "text", "value": "4"}],
            },
        ]
    }
    (record,) = import_file(tmp_path, "m.jsonl", jsonl(row))

    assert record.response == "<think>\nAdd them.\n</think>\n\n4"


def test_conversation_ending_in_tool_call_is_row_error(tmp_path):
    row = {
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": [{"type": "tool_call", "value": '{"name": "weather", "arguments": {}}'}]},
        ]
    }
    (error,) = import_file(tmp_path, "m.jsonl", jsonl(row))

    assert isinstance(error, RowError)
    assert "tool call" in error.reason


def test_kto_label_is_kept_in_metadata(tmp_path):
    row = {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}], "label": False}

    (record,) = import_file(tmp_path, "k.json", json.dumps([row]))

    assert record.metadata == {"label": False}
    assert record.response == "A"


def test_prompt_completion_strings(tmp_path):
    row = {"prompt": "The sky is", "completion": " blue.", "target": "blue"}

    (record,) = import_file(tmp_path, "pc.jsonl", jsonl(row))

    assert record.messages == [Message("user", "The sky is")]
    assert record.response == " blue."
    assert record.metadata == {"target": "blue"}


def test_prompt_completion_conversational(tmp_path):
    row = {
        "prompt": [{"role": "system", "content": "Short."}, {"role": "user", "content": "Sky colour?"}],
        "completion": [{"role": "assistant", "content": "Blue."}],
    }
    (record,) = import_file(tmp_path, "pc.jsonl", jsonl(row))

    assert record.messages == [Message("system", "Short."), Message("user", "Sky colour?")]
    assert record.response == "Blue."


def test_prompt_only_has_no_response(tmp_path):
    (record,) = import_file(tmp_path, "p.jsonl", jsonl({"prompt": "Describe a cat."}))

    assert record.response is None


def test_preference_strings(tmp_path):
    row = {"prompt": "Pick one", "chosen": "Good", "rejected": "Bad"}

    (record,) = import_file(tmp_path, "p.jsonl", jsonl(row))

    assert record.messages == [Message("user", "Pick one")]
    assert (record.chosen, record.rejected, record.response) == ("Good", "Bad", None)


def test_preference_sharegpt_objects(tmp_path):
    row = {
        "conversations": [{"from": "system", "value": "Be kind."}, {"from": "human", "value": "Hi"}],
        "chosen": {"from": "gpt", "value": "Hello!"},
        "rejected": {"from": "gpt", "value": "What."},
    }
    (record,) = import_file(tmp_path, "p.json", json.dumps([row]))

    assert record.messages == [Message("system", "Be kind."), Message("user", "Hi")]
    assert (record.chosen, record.rejected) == ("Hello!", "What.")


def test_preference_implicit_prompt_from_whole_conversations(tmp_path):
    context = [
        {"role": "system", "content": [{"type": "text", "value": "S"}]},
        {"role": "user", "content": [{"type": "text", "value": "U"}]},
    ]
    row = {
        "chosen_messages": [*context, {"role": "assistant", "content": [{"type": "text", "value": "yes"}]}],
        "rejected_messages": [*context, {"role": "assistant", "content": [{"type": "text", "value": "no"}]}],
    }
    (record,) = import_file(tmp_path, "p.jsonl", jsonl(row))

    assert record.messages == [Message("system", "S"), Message("user", "U")]
    assert (record.chosen, record.rejected) == ("yes", "no")


def test_preference_different_contexts_is_row_error(tmp_path):
    row = {
        "chosen": [{"role": "user", "content": "A"}, {"role": "assistant", "content": "1"}],
        "rejected": [{"role": "user", "content": "B"}, {"role": "assistant", "content": "2"}],
    }
    (error,) = import_file(tmp_path, "p.jsonl", jsonl(row))

    assert isinstance(error, RowError)
    assert "differ" in error.reason


def test_preference_ultrafeedback_drops_repeated_messages(tmp_path):
    conversation = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "good"}]
    row = {
        "prompt": "Q",
        "prompt_id": "abc",
        "chosen": conversation,
        "rejected": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "bad"}],
        "messages": conversation,
        "score_chosen": 8.5,
    }
    (record,) = import_file(tmp_path, "p.jsonl", jsonl(row))

    assert record.external_id == "abc"
    assert record.metadata == {"score_chosen": 8.5}
    assert (record.chosen, record.rejected) == ("good", "bad")


def test_hh_transcripts_split_at_last_assistant_turn(tmp_path):
    prefix = "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Tell me a joke"
    row = {"chosen": prefix + "\n\nAssistant: Why did the chicken...", "rejected": prefix + "\n\nAssistant: No."}

    (record,) = import_file(tmp_path, "hh.jsonl", jsonl(row))

    assert record.messages == [Message("user", "Hi"), Message("assistant", "Hello"), Message("user", "Tell me a joke")]
    assert record.chosen == "Why did the chicken..."
    assert record.rejected == "No."


def test_hh_transcripts_that_diverge_early_are_row_error(tmp_path):
    row = {
        "chosen": "\n\nHuman: A\n\nAssistant: x\n\nHuman: B\n\nAssistant: y",
        "rejected": "\n\nHuman: A\n\nAssistant: z",
    }

    (error,) = import_file(tmp_path, "hh.jsonl", jsonl(row))

    assert isinstance(error, RowError)
    assert "turn 2" in error.reason


def test_self_instruct_gives_one_record_per_instance(tmp_path):
    row = {
        "id": "seed_task_1",
        "name": "antonyms",
        "instruction": "Give the antonym.",
        "instances": [{"input": "hot", "output": "cold"}, {"input": "up", "output": "down"}],
        "is_classification": False,
    }
    items = import_file(tmp_path, "seed.jsonl", jsonl(row))

    assert [record.messages[0].content for record in items] == ["Give the antonym.\n\nhot", "Give the antonym.\n\nup"]
    assert [record.response for record in items] == ["cold", "down"]
    assert [record.external_id for record in items] == ["seed_task_1#1", "seed_task_1#2"]
    assert [record.metadata["instance"] for record in items] == [1, 2]
    assert {record.record for record in items} == {1}


def test_belle_question_answer(tmp_path):
    rows = [
        {"question": "什么是光合作用？", "std_answer": "植物利用光能……", "class": "open qa"},
        {"question": "写一首诗", "std_answer": "", "class": "generation"},
    ]

    items = import_file(tmp_path, "belle.json", jsonl(*rows))

    assert [record.response for record in items] == ["植物利用光能……", None]
    assert items[0].metadata == {"class": "open qa"}


def test_firefly_conversation_pairs(tmp_path):
    row = {
        "conversation_id": 7,
        "category": "Brainstorming",
        "conversation": [{"human": "问题一", "assistant": "回答一"}, {"human": "问题二", "assistant": "回答二"}],
    }
    (record,) = import_file(tmp_path, "f.jsonl", jsonl(row))

    assert record.messages == [Message("user", "问题一"), Message("assistant", "回答一"), Message("user", "问题二")]
    assert record.response == "回答二"
    assert record.external_id == "7"
    assert record.metadata == {"category": "Brainstorming"}


def test_text_records_from_strings_and_objects(tmp_path):
    from_array = import_file(tmp_path, "t.json", json.dumps(["First prompt", "Second prompt"]))
    from_lines = import_file(tmp_path, "t.jsonl", jsonl({"text": "Third prompt"}))

    assert [record.messages[0].content for record in from_array] == ["First prompt", "Second prompt"]
    assert from_lines[0].messages == [Message("user", "Third prompt")]


def test_moss_conversation_tags_are_removed(tmp_path):
    row = {
        "conversation_id": "1",
        "meta_instruction": "You are MOSS.",
        "num_turns": 1,
        "chat": {
            "turn_1": {
                "Human": "<|Human|>: 你好<eoh>\n",
                "Inner Thoughts": "<|Inner Thoughts|>: None<eot>\n",
                "Commands": "<|Commands|>: None<eoc>\n",
                "Tool Responses": "<|Results|>: None<eor>\n",
                "MOSS": "<|MOSS|>: 你好！<eom>\n",
            }
        },
        "category": "brainstorming",
    }
    (record,) = import_file(tmp_path, "moss.json", json.dumps(row, ensure_ascii=False, indent=4))

    assert record.messages == [Message("system", "You are MOSS."), Message("user", "你好")]
    assert record.response == "你好！"
    assert record.metadata == {"category": "brainstorming"}


def test_oasst_tree_ranked_replies_become_preference(tmp_path):
    tree = {
        "message_tree_id": "t1",
        "prompt": {
            "text": "Name a colour",
            "role": "prompter",
            "lang": "en",
            "replies": [
                {"text": "Red", "role": "assistant", "rank": 1, "replies": []},
                {"text": "Blue", "role": "assistant", "rank": 0, "replies": []},
                {"text": "Green", "role": "assistant", "rank": 2, "replies": []},
            ],
        },
    }
    (record,) = import_file(tmp_path, "oasst.jsonl", jsonl(tree))

    assert record.messages == [Message("user", "Name a colour")]
    assert (record.chosen, record.rejected) == ("Blue", "Green")
    assert record.external_id == "t1"
    assert record.metadata == {"lang": "en"}


def test_mt_bench_single_and_multi_turn(tmp_path):
    rows = [
        {"question_id": 1, "category": "writing", "turns": ["Write a poem."]},
        {"question_id": 2, "category": "writing", "turns": ["Write a poem.", "Now shorter."]},
    ]
    items = import_file(tmp_path, "q.jsonl", jsonl(*rows))

    assert records(items)[0].messages == [Message("user", "Write a poem.")]
    (error,) = errors(items)
    assert error.record == 2
    assert "2 user turns" in error.reason


def test_oasst_flat_messages_are_rejected_with_reason(tmp_path):
    rows = [
        {"task_message_id": "a", "user_message_id": "b", "parent_message_id": None, "text": "Hi", "role": "prompter"}
    ]

    (error,) = import_file(tmp_path, "seed.json", json.dumps(rows))

    assert isinstance(error, RowError)
    assert "OpenAssistant" in error.reason
    assert "message_tree_id" in error.reason


def test_unknown_shape_raises_with_fields_and_option(tmp_path):
    with pytest.raises(ImportFormatError) as caught:
        import_file(tmp_path, "x.json", json.dumps([{"first": "John", "last": "Doe"}]))

    message = str(caught.value)
    assert "['first', 'last']" in message
    assert "shape option" in message


def test_forced_shape_reports_missing_field(tmp_path):
    items = import_file(tmp_path, "x.jsonl", jsonl({"prompt": "Hi"}), shape="alpaca")

    (error,) = items
    assert isinstance(error, RowError)
    assert "Field 'instruction' is missing." == error.reason


def test_unknown_shape_option_raises(tmp_path):
    with pytest.raises(ImportFormatError, match="Unknown shape 'alpacca'"):
        import_file(tmp_path, "x.jsonl", jsonl({"instruction": "Hi"}), shape="alpacca")


def test_record_stream_reports_detected_shape(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(jsonl({"conversations": [{"from": "human", "value": "Hi"}]}), encoding="utf-8")

    with path.open("rb") as stream:
        reader = read_records(stream, ImportOptions(filename="s.jsonl"))
        assert reader.shape is None
        list(reader)

    assert reader.shape == "sharegpt"
    assert reader.file_format == "jsonl"


def test_long_external_id_is_row_error(tmp_path):
    (error,) = import_file(tmp_path, "x.jsonl", jsonl({"id": "x" * 501, "instruction": "Hi", "output": "Yo"}))

    assert isinstance(error, RowError)
    assert "500 characters" in error.reason


def test_nul_character_is_row_error(tmp_path):
    (error,) = import_file(tmp_path, "x.jsonl", jsonl({"instruction": "Hi\u0000there", "output": "Yo"}))

    assert isinstance(error, RowError)
    assert "NUL" in error.reason
