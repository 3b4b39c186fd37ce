"""Fixtures for the training tests: a tiny model built once per session and small snapshots.

Helpers reach the tests as fixtures, not imports, so the tests work with any pytest import mode.
All training tests should run in one pytest process, because importing torch and transformers
costs seconds and hundreds of MB per process. Each module marks its tests with
`xdist_group("training")`, so `pytest -n N --dist loadgroup` keeps them in one worker. Nothing is
downloaded: the hub is switched off below.
"""

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPOSITORY_ROOT.parent / "shared" / "data"

# Short conversations in English and Chinese, with and without a system prompt, and one multi-turn.
FIXTURE_CONVERSATIONS: list[list[dict[str, str]]] = [
    [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ],
    [
        {"role": "user", "content": "今天天气怎么样？"},
        {"role": "assistant", "content": "今天天气很好，适合散步。"},
    ],
    [
        {"role": "user", "content": "Name a primary colour."},
        {"role": "assistant", "content": "Red is a primary colour."},
    ],
    [
        {"role": "system", "content": "请用中文回答。"},
        {"role": "user", "content": "一加一等于几？"},
        {"role": "assistant", "content": "一加一等于二。"},
    ],
    [
        {"role": "user", "content": "Say hello."},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Now say goodbye."},
        {"role": "assistant", "content": "Goodbye!"},
    ],
    [
        {"role": "user", "content": "Translate 'cat' into Chinese."},
        {"role": "assistant", "content": "猫"},
    ],
]


def corpus_of(conversations: Iterable[list[dict[str, str]]]) -> list[str]:
    """Return the text of every message, for training a tokenizer."""
    return [message["content"] for conversation in conversations for message in conversation]


def write_jsonl(path: Path, rows: Iterable[Any]) -> Path:
    """Write one JSON value per line, keeping non-ASCII text as text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [row if isinstance(row, str) else json.dumps(row, ensure_ascii=False) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_snapshot(directory: Path, train: list[list[dict[str, str]]], validation: list[list[dict[str, str]]]) -> Path:
    """Write a snapshot directory in the messages format and return it."""
    write_jsonl(directory / "train.messages.jsonl", ({"messages": messages} for messages in train))
    write_jsonl(directory / "validation.messages.jsonl", ({"messages": messages} for messages in validation))
    return directory


def alpaca_to_messages(record: dict[str, str]) -> list[dict[str, str]]:
    """Convert an Alpaca record (instruction, input, output) into a user and an assistant message."""
    prompt = record["instruction"]
    if record.get("input"):
        prompt = f"{prompt}\n\n{record['input']}"
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": record["output"]}]


def read_alpaca_rows(relative_path: str, count: int) -> list[list[dict[str, str]]]:
    """Read the first `count` records of an Alpaca JSON file under the shared data directory."""
    records = json.loads((SHARED_DATA / relative_path).read_text(encoding="utf-8"))
    return [alpaca_to_messages(record) for record in records[:count]]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from app.training.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"), corpus_of(FIXTURE_CONVERSATIONS * 4))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def small_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("small-snapshot")
    return write_snapshot(directory, train=FIXTURE_CONVERSATIONS * 4, validation=FIXTURE_CONVERSATIONS)


@pytest.fixture(scope="session")
def finetuned_run(tiny_model_dir: Path, small_snapshot: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from app.training.finetune import run_finetune

    config = {
        "base_model": str(tiny_model_dir),
        "max_steps": 4,
        "learning_rate": 1e-2,
        "max_length": 128,
        "save_steps": 2,
        "logging_steps": 1,
    }
    return run_finetune(config, small_snapshot, tmp_path_factory.mktemp("finetune-output"))


@pytest.fixture(scope="session")
def conversations() -> list[list[dict[str, str]]]:
    return [list(messages) for messages in FIXTURE_CONVERSATIONS]


@pytest.fixture(scope="session")
def snapshot_writer():
    return write_snapshot


@pytest.fixture(scope="session")
def jsonl_writer():
    return write_jsonl


@pytest.fixture(scope="session")
def alpaca_reader():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}; these tests need the shared data directory beside the repository")
    return read_alpaca_rows
