"""A fine-tune and an evaluation on 200 real Alpaca rows (100 Chinese, 100 English), converted to messages."""

import random

import pytest

from app.training.evaluate import run_evaluation
from app.training.finetune import run_finetune

pytestmark = [pytest.mark.training, pytest.mark.xdist_group("training")]


@pytest.fixture(scope="module")
def real_snapshot(alpaca_reader, snapshot_writer, tmp_path_factory):
    rows = alpaca_reader("zh/llamafactory_alpaca_zh_demo.json", 100) + alpaca_reader(
        "en/llamafactory_alpaca_en_demo.json", 100
    )
    random.Random(0).shuffle(rows)
    directory = tmp_path_factory.mktemp("real-snapshot")
    return snapshot_writer(directory, train=rows[:180], validation=rows[180:])


@pytest.fixture(scope="module")
def real_model_dir(real_snapshot, tmp_path_factory):
    import json

    from app.training.tiny_model import build_tiny_model

    lines = (real_snapshot / "train.messages.jsonl").read_text(encoding="utf-8").splitlines()
    corpus = [message["content"] for line in lines for message in json.loads(line)["messages"]]
    return build_tiny_model(tmp_path_factory.mktemp("real-tiny-model"), corpus)


def test_real_rows_finetune_and_evaluate(real_snapshot, real_model_dir, tmp_path) -> None:
    config = {
        "base_model": str(real_model_dir),
        "max_steps": 3,
        "max_length": 256,
        "packing": True,
        "learning_rate": 1e-3,
        "logging_steps": 1,
    }

    result = run_finetune(config, real_snapshot, tmp_path)
    evaluation = run_evaluation(
        real_model_dir,
        result["adapter_path"],
        real_snapshot,
        {"max_new_tokens": 8, "max_examples": 5, "max_length": 256},
    )

    report = result["data_report"]
    assert report["rows"] == 180
    assert report["kept"] + report["left_out"] == report["rows"]
    assert report["invalid"]["count"] == 0
    assert report["empty_response"]["count"] == 0
    # Many Alpaca responses are longer than 256 tokens of a small BPE vocabulary.
    assert report["truncated"]["count"] > 0
    assert len(report["truncated"]["indices"]) == report["truncated"]["count"]
    assert report["tokens"]["max_per_example"] <= 256
    assert result["status"] == "completed"
    assert result["train_metrics"]["global_step"] == 3
    assert result["train_rows"] < report["kept"]
    assert evaluation["loss_examples"] == 20 - evaluation["data_report"]["left_out"]
    assert evaluation["scored_examples"] == 5
    assert evaluation["bleu_tokenizer"] == "zh"
