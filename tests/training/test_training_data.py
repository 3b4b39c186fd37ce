from pathlib import Path

import pytest

from app.training.data import ConversationEncoder, prepare_split, read_conversations, require_examples
from app.training.errors import ChatTemplateError, TrainingDataError
from app.training.tiny_model import TINY_CHAT_TEMPLATE

pytestmark = [pytest.mark.training, pytest.mark.xdist_group("training")]

TEMPLATE_WITHOUT_BOS = TINY_CHAT_TEMPLATE.replace("{{ bos_token }}", "", 1)
TEMPLATE_WITH_TWO_BOS = TINY_CHAT_TEMPLATE.replace("{{ bos_token }}", "{{ bos_token }}{{ bos_token }}", 1)
TEMPLATE_WITHOUT_EOS = TINY_CHAT_TEMPLATE.replace("{{ eos_token }}{% endgeneration %}", "{% endgeneration %}")
TEMPLATE_WITH_EOS_OUTSIDE_MARKERS = TINY_CHAT_TEMPLATE.replace(
    "{{ eos_token }}{% endgeneration %}", "{% endgeneration %}{{ eos_token }}"
)
TEMPLATE_WITHOUT_MARKERS = TINY_CHAT_TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", "")


@pytest.fixture
def tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _segments(tokenizer, input_ids: list[int], labels: list[int]) -> list[str]:
    """Decode each run of trained labels, special tokens included."""
    segments, current = [], []
    for token, label in zip(input_ids, labels, strict=True):
        if label != -100:
            current.append(token)
        elif current:
            segments.append(tokenizer.decode(current))
            current = []
    if current:
        segments.append(tokenizer.decode(current))
    return segments


def test_template_with_bos_gives_one_bos(tokenizer, conversations) -> None:
    assert TINY_CHAT_TEMPLATE.startswith("{{ bos_token }}")
    encoder = ConversationEncoder(tokenizer)

    input_ids, labels, _ = encoder.encode_training(conversations[0])

    assert input_ids[0] == tokenizer.bos_token_id
    assert input_ids.count(tokenizer.bos_token_id) == 1
    assert labels[0] == -100


@pytest.mark.parametrize("template", [TEMPLATE_WITHOUT_BOS, TEMPLATE_WITH_TWO_BOS], ids=["no-bos", "two-bos"])
def test_bos_normalized_to_exactly_one(tokenizer, conversations, template) -> None:
    reference_ids, reference_labels, _ = ConversationEncoder(tokenizer).encode_training(conversations[0])
    encoder = ConversationEncoder(tokenizer, template)

    input_ids, labels, _ = encoder.encode_training(conversations[0])

    assert input_ids[0] == tokenizer.bos_token_id
    assert input_ids.count(tokenizer.bos_token_id) == 1
    assert input_ids == reference_ids
    assert labels == reference_labels


def test_prompt_encoding_has_one_bos_and_assistant_header(tokenizer, conversations) -> None:
    encoder = ConversationEncoder(tokenizer, TEMPLATE_WITH_TWO_BOS)

    prompt_ids = encoder.encode_prompt(conversations[0][:-1])

    assert prompt_ids.count(tokenizer.bos_token_id) == 1
    assert tokenizer.decode(prompt_ids).endswith("<|assistant|>\n")


def test_labels_keep_eos_and_mask_system_and_user(tokenizer, conversations) -> None:
    encoder = ConversationEncoder(tokenizer)

    input_ids, labels, _ = encoder.encode_training(conversations[0])

    assert _segments(tokenizer, input_ids, labels) == ["Paris.</s>"]
    eos_positions = [position for position, token in enumerate(input_ids) if token == tokenizer.eos_token_id]
    assert len(eos_positions) == 1
    assert labels[eos_positions[0]] == tokenizer.eos_token_id
    masked_text = tokenizer.decode([token for token, label in zip(input_ids, labels) if label == -100])
    assert "You are a concise assistant." in masked_text
    assert "What is the capital of France?" in masked_text
    assert "Paris" not in masked_text


def test_every_assistant_turn_ends_with_eos(tokenizer, conversations) -> None:
    encoder = ConversationEncoder(tokenizer)

    input_ids, labels, response_start = encoder.encode_training(conversations[4])

    assert _segments(tokenizer, input_ids, labels) == ["Hello!</s>", "Goodbye!</s>"]
    assert tokenizer.decode(input_ids[response_start:]).startswith("Goodbye!")


@pytest.mark.parametrize(
    "template",
    [TEMPLATE_WITHOUT_EOS, TEMPLATE_WITH_EOS_OUTSIDE_MARKERS],
    ids=["eos-missing", "eos-outside-markers"],
)
def test_eos_placed_inside_mask(tokenizer, conversations, template) -> None:
    encoder = ConversationEncoder(tokenizer, template)

    input_ids, labels, _ = encoder.encode_training(conversations[4])

    assert _segments(tokenizer, input_ids, labels) == ["Hello!</s>", "Goodbye!</s>"]
    assert input_ids.count(tokenizer.eos_token_id) == 2


def test_eos_label_kept_when_pad_is_eos(tokenizer, conversations) -> None:
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    encoder = ConversationEncoder(tokenizer)
    encoded = [encoder.encode_training(messages) for messages in conversations[:3]]
    collator = DataCollatorForLanguageModeling(pad_token_id=tokenizer.eos_token_id)

    batch = collator([{"input_ids": ids, "labels": labels} for ids, labels, _ in encoded])

    for row, (ids, labels, _) in enumerate(encoded):
        eos_position = ids.index(tokenizer.eos_token_id)
        assert batch["input_ids"][row, 0].item() == tokenizer.bos_token_id
        assert batch["labels"][row, eos_position].item() == tokenizer.eos_token_id
        assert (batch["labels"][row, len(ids) :] == -100).all()


def test_function_call_trained_and_observation_masked(tmp_path, tokenizer, jsonl_writer) -> None:
    row = {
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "function_call", "content": '{"name": "weather"}'},
            {"role": "observation", "content": '{"temperature": 21}'},
            {"role": "assistant", "content": "It is 21 degrees."},
        ]
    }
    path = jsonl_writer(tmp_path / "train.messages.jsonl", [row])

    conversations, rejected = read_conversations(path)
    split = prepare_split(ConversationEncoder(tokenizer), path, max_length=128)

    assert rejected == []
    assert [message["role"] for message in conversations[0].messages] == ["user", "assistant", "user", "assistant"]
    assert conversations[0].original_roles == ("user", "function_call", "observation", "assistant")
    example = split.examples[0]
    segments = _segments(tokenizer, example.input_ids, example.labels)
    assert segments == ['{"name": "weather"}</s>', "It is 21 degrees.</s>"]
    assert split.report["roles_mapped"] == {"function_call": 1, "observation": 1}


def test_empty_responses_left_out(tmp_path, tokenizer, jsonl_writer) -> None:
    rows = [
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "   "}]},
        {"messages": [{"role": "user", "content": "No answer yet"}]},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": None}]},
        {"messages": []},
    ]
    path = jsonl_writer(tmp_path / "train.messages.jsonl", rows)

    split = prepare_split(ConversationEncoder(tokenizer), path, max_length=128)

    assert [example.index for example in split.examples] == [0]
    assert split.report["rows"] == 5
    assert split.report["kept"] == 1
    assert split.report["left_out"] == 4
    assert split.report["empty_response"] == {"count": 4, "indices": [1, 2, 3, 4]}
    for example in split.examples:
        assert any(label != -100 for label in example.labels)


def test_report_lists_invalid_rows_with_reason(tmp_path, tokenizer, jsonl_writer) -> None:
    rows = [
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]},
        "{not json",
        {"messages": [{"role": "narrator", "content": "x"}, {"role": "assistant", "content": "y"}]},
        {"prompt": "wrong shape"},
        {"messages": [{"role": "user", "content": ["a", "list"]}, {"role": "assistant", "content": "y"}]},
    ]
    path = jsonl_writer(tmp_path / "train.messages.jsonl", rows)

    split = prepare_split(ConversationEncoder(tokenizer), path, max_length=128)

    invalid = split.report["invalid"]
    assert invalid["count"] == 4
    assert [row["index"] for row in invalid["rows"]] == [1, 2, 3, 4]
    assert [row["line"] for row in invalid["rows"]] == [2, 3, 4, 5]
    assert invalid["rows"][0]["reason"].startswith("not valid JSON")
    assert "unknown role 'narrator'" in invalid["rows"][1]["reason"]
    assert split.report["left_out"] == 4


def test_long_prompt_response_left_out(tmp_path, tokenizer, jsonl_writer) -> None:
    long_prompt = " ".join(f"w{number}" for number in range(200))
    encoder = ConversationEncoder(tokenizer)
    prompt_tokens = len(encoder.encode_prompt([{"role": "user", "content": long_prompt}]))
    assert prompt_tokens >= 200
    rows = [
        {"messages": [{"role": "user", "content": "Short question?"}, {"role": "assistant", "content": "Yes."}]},
        {"messages": [{"role": "user", "content": long_prompt}, {"role": "assistant", "content": "Too late."}]},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": long_prompt}]},
    ]
    path = jsonl_writer(tmp_path / "train.messages.jsonl", rows)

    split = prepare_split(encoder, path, max_length=64)

    report = split.report
    assert report["response_truncated_away"] == {"count": 1, "indices": [1]}
    assert report["truncated"] == {"count": 1, "indices": [2]}
    assert report["kept"] == 2
    assert report["left_out"] == 1
    assert [example.index for example in split.examples] == [0, 2]
    assert all(len(example.input_ids) <= 64 for example in split.examples)
    assert report["tokens"]["max_per_example"] == 64


def test_no_usable_rows_raises_with_counts(tmp_path, tokenizer, jsonl_writer) -> None:
    path = jsonl_writer(tmp_path / "train.messages.jsonl", [{"messages": [{"role": "user", "content": "Hi"}]}])
    split = prepare_split(ConversationEncoder(tokenizer), path, max_length=64)

    with pytest.raises(TrainingDataError, match="1 without an assistant response"):
        require_examples(split)


def test_template_without_markers_rejected(tokenizer) -> None:
    with pytest.raises(ChatTemplateError, match="generation"):
        ConversationEncoder(tokenizer, TEMPLATE_WITHOUT_MARKERS)


def test_encoder_leaves_tokenizer_template_unchanged(tokenizer) -> None:
    ConversationEncoder(tokenizer, TEMPLATE_WITHOUT_BOS)

    assert tokenizer.chat_template == TINY_CHAT_TEMPLATE


def test_known_template_swapped_for_training_version(tokenizer, conversations) -> None:
    from importlib.resources import files

    qwen_template = (files("trl") / "chat_templates" / "qwen2_5.jinja").read_text(encoding="utf-8")
    assert "{% generation %}" not in qwen_template
    encoder = ConversationEncoder(tokenizer, qwen_template)

    input_ids, labels, _ = encoder.encode_training(conversations[0])

    assert "{% generation %}" in encoder.chat_template
    # The Qwen template ends a turn with <|im_end|>, not the tokenizer's EOS, so one EOS is inserted
    # at the end of the marked span, which in TRL's version includes the newline after <|im_end|>.
    segments = _segments(tokenizer, input_ids, labels)
    assert len(segments) == 1
    assert segments[0].strip().startswith("Paris.<|im_end|>")
    assert segments[0].endswith("<|im_end|>\n</s>")
    assert input_ids.count(tokenizer.eos_token_id) == 1
    assert input_ids[0] == tokenizer.bos_token_id
    assert input_ids.count(tokenizer.bos_token_id) == 1
