"""Compare training throughput of app.training.finetune with a plain TRL SFTTrainer script on a CUDA GPU.

Both runs train LoRA adapters with packing for the same number of steps on the same snapshot of
real Alpaca rows (half Chinese, half English), in one process, one after the other. The model is
randomly initialised from the configuration of Qwen2.5-0.5B, written inline below, so nothing is
downloaded. The tokenizer is the tiny byte-level BPE tokenizer of app.training.tiny_model, trained
on the snapshot. The full 151,936-token vocabulary is kept, because the output layer is a large
share of the work. The script prints input tokens per second (padding excluded) and peak GPU
memory of each run.

    python bench/train_gpu.py                 # needs a CUDA GPU
    python bench/train_gpu.py --cpu-smoke     # a tiny model for two steps on the CPU, to check the script

Both runs use the same LoRA settings, learning rate, batch size, max_length, bf16 (fp32 in the
smoke mode), frozen base weights loaded in that precision, and gradient checkpointing off.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY_ROOT))

from train_tiny import DEFAULT_DATA_DIR, write_alpaca_snapshot  # noqa: E402  (a sibling script in bench/)

# Qwen2.5-0.5B's architecture (from its published config.json); the weights are random.
QWEN2_5_0_5B = {
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
    "tie_word_embeddings": True,
}

# The same layout shrunk for --cpu-smoke; the vocabulary stays full size.
SMOKE = {
    **QWEN2_5_0_5B,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}

LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="Optimizer steps of each run.")
    parser.add_argument("--batch-size", type=int, default=8, help="Packed rows per optimizer step.")
    parser.add_argument("--max-length", type=int, default=2048, help="Tokens per packed row.")
    parser.add_argument("--rows", type=int, default=1000, help="Training rows in the snapshot.")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="Directory with the Alpaca files.")
    parser.add_argument("--cpu-smoke", action="store_true", help="Run a tiny model for 2 steps on the CPU.")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.cpu_smoke:
        args.steps, args.batch_size, args.max_length, args.rows = 2, 2, 256, 64
    elif not torch.cuda.is_available():
        print(
            "error: no CUDA GPU found; this benchmark needs one. Run with --cpu-smoke to check the script on a CPU.",
            file=sys.stderr,
        )
        return 2

    import structlog

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    with tempfile.TemporaryDirectory(prefix="sftdesk-gpu-bench-") as work_dir:
        work = Path(work_dir)
        snapshot = write_alpaca_snapshot(args.data_dir, args.rows, work / "snapshot")
        model_dir = _build_random_model(snapshot, work / "model", SMOKE if args.cpu_smoke else QWEN2_5_0_5B)
        precision = "fp32" if args.cpu_smoke else "bf16"
        results = [
            _run_sftdesk(args, snapshot, model_dir, work / "sftdesk", precision),
            _run_plain_trl(args, snapshot, model_dir, work / "trl", precision),
        ]

    device = "CPU (smoke mode)" if args.cpu_smoke else torch.cuda.get_device_name(0)
    print(f"{device}; {args.steps} steps, batch {args.batch_size}, max_length {args.max_length}, packing, LoRA r=16")
    print(f"{'run':<22} {'seconds':>8} {'tokens':>10} {'tokens/s':>10} {'peak GPU MiB':>13}")
    for result in results:
        peak = f"{result['peak_cuda_bytes'] / 2**20:.0f}" if result["peak_cuda_bytes"] is not None else "-"
        print(
            f"{result['name']:<22} {result['runtime_seconds']:>8.1f} {result['tokens']:>10} "
            f"{result['tokens_per_second']:>10.0f} {peak:>13}"
        )
    print(json.dumps(results))
    return 0


def _build_random_model(snapshot: Path, directory: Path, architecture: dict) -> Path:
    import shutil

    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from app.training.tiny_model import build_tiny_model

    lines = (snapshot / "train.messages.jsonl").read_text(encoding="utf-8").splitlines()
    corpus = [message["content"] for line in lines for message in json.loads(line)["messages"]]
    tokenizer_dir = build_tiny_model(directory.parent / "tokenizer", corpus)

    config = Qwen2Config(bos_token_id=1, eos_token_id=2, pad_token_id=0, **architecture)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(directory)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(tokenizer_dir / name, directory / name)
    return directory


def _reset_peak_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_cuda_bytes() -> int | None:
    import torch

    return torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None


def _run_sftdesk(args: argparse.Namespace, snapshot: Path, model_dir: Path, output: Path, precision: str) -> dict:
    from app.training.finetune import run_finetune

    _reset_peak_memory()
    config = {
        "base_model": str(model_dir),
        "lora_r": LORA["r"],
        "lora_alpha": LORA["lora_alpha"],
        "lora_dropout": LORA["lora_dropout"],
        "lora_target_modules": LORA["target_modules"],
        "learning_rate": 2e-4,
        "max_steps": args.steps,
        "per_device_train_batch_size": args.batch_size,
        "max_length": args.max_length,
        "packing": True,
        "gradient_checkpointing": False,
        "precision": precision,
        "logging_steps": 10,
        "save_steps": 10_000_000,
    }
    result = run_finetune(config, snapshot, output)
    return {
        "name": "app.training.finetune",
        "runtime_seconds": result["train_metrics"]["train_runtime_seconds"],
        "tokens": result["tokens_seen"],
        "tokens_per_second": result["tokens_per_second"],
        "peak_cuda_bytes": _peak_cuda_bytes(),
    }


def _run_plain_trl(args: argparse.Namespace, snapshot: Path, model_dir: Path, output: Path, precision: str) -> dict:
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    _reset_peak_memory()
    dataset = load_dataset("json", data_files=str(snapshot / "train.messages.jsonl"), split="train")
    sft_config = SFTConfig(
        output_dir=str(output),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=2e-4,
        max_length=args.max_length,
        packing=True,
        assistant_only_loss=True,
        bf16=precision == "bf16",
        activation_checkpointing=False,
        model_init_kwargs={"dtype": torch.bfloat16 if precision == "bf16" else torch.float32},
        include_num_input_tokens_seen="non_padding",
        logging_steps=10,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=str(model_dir),
        args=sft_config,
        train_dataset=dataset,
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        peft_config=LoraConfig(task_type="CAUSAL_LM", **LORA),
    )
    started = time.monotonic()
    output_metrics = trainer.train().metrics
    runtime = output_metrics.get("train_runtime") or (time.monotonic() - started)
    tokens = int(trainer.state.num_input_tokens_seen)
    return {
        "name": "plain TRL SFTTrainer",
        "runtime_seconds": runtime,
        "tokens": tokens,
        "tokens_per_second": tokens / runtime,
        "peak_cuda_bytes": _peak_cuda_bytes(),
    }


if __name__ == "__main__":
    sys.exit(main())
