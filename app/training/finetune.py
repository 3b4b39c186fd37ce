"""Supervised fine-tuning of a causal LM on a snapshot, with TRL's SFTTrainer and a PEFT LoRA adapter.

`run_finetune` validates the config and tokenizes the snapshot, reporting what max_length truncates
or leaves out. Then it loads the model, builds the trainer and trains, resuming from the newest
checkpoint when requested. Last, it saves the adapter or model with its tokenizer and returns the
metrics.

The examples reach SFTTrainer already tokenized, with labels that keep only assistant tokens (see
`app.training.data`). So TRL's `assistant_only_loss` stays off: it would tokenize the conversations
a second time and without this module's BOS and EOS rules. SFTTrainer still packs the examples when
`packing` is on.

Run it from the command line, also under `accelerate launch` for several GPUs:

    python -m app.training.finetune --config cfg.json --snapshot SNAPSHOT_DIR --output OUTPUT_DIR
"""

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
import torch
from transformers import PrinterCallback, TrainerCallback

from app.training.config import FineTuneConfig, parse_config
from app.training.data import TRAIN_FILE, ConversationEncoder, prepare_split, require_examples, snapshot_file
from app.training.errors import TrainingError

logger = structlog.get_logger(__name__)

CHECKPOINTS_DIR = "checkpoints"
ADAPTER_DIR = "adapter"
MODEL_DIR = "model"
RESULT_FILE = "result.json"

# Gradient checkpointing saves activation memory but slows every step. Small models need little
# activation memory, so by default it is on only from this size up. The threshold is an estimate.
GRADIENT_CHECKPOINTING_MIN_PARAMETERS = 1_000_000_000

ProgressCallback = Callable[[dict[str, Any]], None]
StopPredicate = Callable[[], bool]


def run_finetune(
    config: FineTuneConfig | dict[str, Any],
    snapshot_dir: str | Path,
    output_dir: str | Path,
    *,
    on_progress: ProgressCallback | None = None,
    should_stop: StopPredicate | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Fine-tune `config.base_model` on the snapshot's train split and save the result under `output_dir`.

    Checkpoints go to `output_dir/checkpoints/checkpoint-<step>` every `save_steps` optimizer steps.
    With `resume=True` training continues from the newest complete checkpoint, or starts anew when
    there is none. When an earlier call with the same config already completed, its stored result
    is returned without training. Without `resume`, existing checkpoints raise TrainingError, so
    that no run is mixed with an earlier one.

    `on_progress` is called on the main process at every logging step and once at the end with
    `{step, total_steps, loss, epoch, eta_seconds}`. `should_stop` is polled after every optimizer
    step. Once it returns True, training saves a checkpoint and stops, and the result has status
    "stopped" and no adapter or model path.

    Returns a JSON-ready dict, also written to `output_dir/result.json`.
    Raises ConfigError, TrainingDataError, ChatTemplateError or TrainingError.
    """
    config = parse_config(FineTuneConfig, config)
    output_dir = Path(output_dir)
    train_path = snapshot_file(snapshot_dir, TRAIN_FILE)
    checkpoint_dir = output_dir / CHECKPOINTS_DIR
    if resume:
        completed = _load_completed_result(output_dir, config)
        if completed is not None:
            logger.info("finetune_already_completed", base_model=config.base_model, output_dir=str(output_dir))
            return completed
    resume_from = _find_resume_checkpoint(checkpoint_dir, resume)

    from datasets import Dataset
    from trl import SFTTrainer

    from app.training.loading import disable_progress_bars, load_tokenizer, peak_memory, resolve_precision

    disable_progress_bars()
    precision = resolve_precision(config.precision)
    log = logger.bind(base_model=config.base_model, output_dir=str(output_dir))
    log.info("finetune_started", resume_from=str(resume_from) if resume_from else None, precision=precision)

    tokenizer = load_tokenizer(config.base_model)
    encoder = ConversationEncoder(tokenizer, config.chat_template)
    # Checkpoints and the final directory save the tokenizer, so evaluation and generation later
    # render prompts with the template that training used.
    tokenizer.chat_template = encoder.chat_template
    train_split = prepare_split(encoder, train_path, config.max_length)
    report = train_split.report
    log.info(
        "finetune_data_prepared",
        rows=report["rows"],
        kept=report["kept"],
        left_out=report["left_out"],
        truncated=report["truncated"]["count"],
    )
    require_examples(train_split)

    model = _load_model(config, precision)
    total_parameters = sum(parameter.numel() for parameter in model.parameters())
    gradient_checkpointing = config.gradient_checkpointing
    if gradient_checkpointing is None:
        gradient_checkpointing = total_parameters >= GRADIENT_CHECKPOINTING_MIN_PARAMETERS

    train_dataset = Dataset.from_dict(
        {
            "input_ids": [example.input_ids for example in train_split.examples],
            "labels": [example.labels for example in train_split.examples],
        }
    )
    progress = _ProgressReporter(on_progress)
    stopper = _StopRequestCallback(should_stop)
    trainer = SFTTrainer(
        model=model,
        args=_build_sft_config(config, checkpoint_dir, precision, gradient_checkpointing),
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=_build_lora_config(config),
        callbacks=[progress, stopper],
    )
    # PrinterCallback prints every log dict to stdout, which the command line keeps for the result.
    # Progress reaches on_progress and the log instead.
    trainer.remove_callback(PrinterCallback)

    # NOTE: transformers 5.25 trains one step beyond max_steps when it resumes a max_steps run from
    # its final checkpoint. Here that happens only if the process died after that checkpoint was
    # saved but before result.json was written, because a completed run is returned above instead.
    train_output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)

    stopped = stopper.stop_requested
    final_dir = None
    if not stopped:
        final_dir = output_dir / (ADAPTER_DIR if config.use_lora else MODEL_DIR)
        # Saves the tokenizer too, as the Trainer's processing class.
        trainer.save_model(str(final_dir))

    result = _build_result(
        config=config,
        trainer=trainer,
        train_output=train_output,
        final_dir=final_dir,
        stopped=stopped,
        resume_from=resume_from,
        checkpoint_dir=checkpoint_dir,
        progress=progress,
        report=report,
        precision=precision,
        gradient_checkpointing=gradient_checkpointing,
        total_parameters=total_parameters,
        memory=peak_memory(),
    )
    if trainer.is_world_process_zero():
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / RESULT_FILE).write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    log.info(
        "finetune_finished",
        status=result["status"],
        global_step=result["train_metrics"]["global_step"],
        tokens_per_second=result["tokens_per_second"],
    )
    return result


def find_last_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    """Return the `checkpoint-<step>` directory with the highest step that was saved completely, or None.

    The Trainer writes `trainer_state.json` last, so a directory without it is a save that was cut
    short (the process died while saving) and is skipped.
    """
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        return None
    candidates = []
    for path in checkpoint_dir.glob("checkpoint-*"):
        step = path.name.removeprefix("checkpoint-")
        if path.is_dir() and step.isdigit() and (path / "trainer_state.json").is_file():
            candidates.append((int(step), path))
    if not candidates:
        return None
    return max(candidates)[1]


def _load_completed_result(output_dir: Path, config: FineTuneConfig) -> dict[str, Any] | None:
    """Return the stored result of a completed run with the same config whose saved model still exists."""
    path = output_dir / RESULT_FILE
    if not path.is_file():
        return None
    stored = json.loads(path.read_text(encoding="utf-8"))
    if stored.get("status") != "completed" or stored.get("config") != config.model_dump(mode="json"):
        return None
    final_dir = stored.get("adapter_path") or stored.get("model_path")
    if not final_dir or not Path(final_dir).is_dir():
        return None
    return stored


def _find_resume_checkpoint(checkpoint_dir: Path, resume: bool) -> Path | None:
    last_checkpoint = find_last_checkpoint(checkpoint_dir)
    if resume:
        return last_checkpoint
    if last_checkpoint is not None:
        raise TrainingError(
            f"{checkpoint_dir} already contains checkpoints from an earlier run; resume it with resume=True "
            "or choose an empty output directory"
        )
    return None


def _load_model(config: FineTuneConfig, precision: str) -> Any:
    from transformers import AutoModelForCausalLM

    from app.training.loading import torch_dtype

    # LoRA keeps the frozen base weights in the training precision to save memory. A full fine-tune
    # keeps fp32 weights, and the Trainer runs mixed precision on top of them.
    dtype = torch_dtype(precision) if config.use_lora else torch_dtype("fp32")
    return AutoModelForCausalLM.from_pretrained(config.base_model, dtype=dtype)


def _build_lora_config(config: FineTuneConfig) -> Any:
    if not config.use_lora:
        return None

    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
        task_type="CAUSAL_LM",
    )


def _build_sft_config(
    config: FineTuneConfig,
    checkpoint_dir: Path,
    precision: str,
    gradient_checkpointing: bool,
) -> Any:
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(checkpoint_dir),
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps if config.max_steps is not None else -1,
        seed=config.seed,
        data_seed=config.seed,
        # TRL 1.16 turns bf16 on unless bf16 or fp16 is set, so both flags are always set explicitly.
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        # transformers 5.25 renamed gradient_checkpointing to activation_checkpointing.
        activation_checkpointing=gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if gradient_checkpointing else None,
        max_length=config.max_length,
        packing=config.packing,
        packing_strategy="bfd",
        # Labels are built in app.training.data, so TRL must not mask or tokenize again.
        assistant_only_loss=False,
        completion_only_loss=False,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        include_num_input_tokens_seen="non_padding",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        # Pinned memory speeds up copies to a GPU and only warns on a CPU.
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def _build_result(
    *,
    config: FineTuneConfig,
    trainer: Any,
    train_output: Any,
    final_dir: Path | None,
    stopped: bool,
    resume_from: Path | None,
    checkpoint_dir: Path,
    progress: "_ProgressReporter",
    report: dict[str, Any],
    precision: str,
    gradient_checkpointing: bool,
    total_parameters: int,
    memory: dict[str, int | None],
) -> dict[str, Any]:
    state = trainer.state
    metrics = dict(train_output.metrics)
    runtime = metrics.get("train_runtime") or 0.0
    tokens_seen = int(state.num_input_tokens_seen) - progress.start_tokens_seen
    trainable_parameters = sum(
        parameter.numel() for parameter in trainer.model.parameters() if parameter.requires_grad
    )
    last_checkpoint = find_last_checkpoint(checkpoint_dir)
    return {
        "status": "stopped" if stopped else "completed",
        "base_model": config.base_model,
        "adapter_path": str(final_dir) if final_dir is not None and config.use_lora else None,
        "model_path": str(final_dir) if final_dir is not None and not config.use_lora else None,
        "checkpoint_path": str(last_checkpoint) if last_checkpoint is not None else None,
        "resumed_from": str(resume_from) if resume_from is not None else None,
        "config": config.model_dump(mode="json"),
        "train_metrics": {
            "train_loss": metrics.get("train_loss"),
            "train_runtime_seconds": runtime,
            "train_samples_per_second": metrics.get("train_samples_per_second"),
            "train_steps_per_second": metrics.get("train_steps_per_second"),
            "epoch": state.epoch,
            "global_step": state.global_step,
            "max_steps": state.max_steps,
        },
        "loss_history": [
            {"step": entry["step"], "loss": entry["loss"], "epoch": entry.get("epoch")}
            for entry in state.log_history
            if "loss" in entry
        ],
        "tokens_seen": tokens_seen,
        "tokens_per_second": tokens_seen / runtime if runtime > 0 else None,
        "train_rows": len(trainer.train_dataset),
        "peak_memory": memory,
        "device": str(trainer.args.device),
        "precision": precision,
        "gradient_checkpointing": gradient_checkpointing,
        "trainable_parameters": trainable_parameters,
        "total_parameters": total_parameters,
        "data_report": report,
    }


class _ProgressReporter(TrainerCallback):
    """Trainer callback that passes progress to `on_progress` on the main process."""

    def __init__(self, on_progress: ProgressCallback | None) -> None:
        self.on_progress = on_progress
        self.start_time = 0.0
        self.start_step = 0
        self.start_tokens_seen = 0
        self.last_loss: float | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.start_time = time.monotonic()
        self.start_step = state.global_step
        self.start_tokens_seen = int(state.num_input_tokens_seen)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not logs or "loss" not in logs:
            return
        self.last_loss = float(logs["loss"])
        self._emit(state)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._emit(state)

    def _emit(self, state: Any) -> None:
        if not state.is_world_process_zero:
            return
        steps_done = state.global_step - self.start_step
        eta_seconds = None
        if steps_done > 0:
            seconds_per_step = (time.monotonic() - self.start_time) / steps_done
            eta_seconds = max(state.max_steps - state.global_step, 0) * seconds_per_step
        loss = self.last_loss if self.last_loss is not None and math.isfinite(self.last_loss) else None
        progress = {
            "step": state.global_step,
            "total_steps": state.max_steps,
            "loss": loss,
            "epoch": state.epoch,
            "eta_seconds": eta_seconds,
        }
        logger.info("finetune_progress", **progress)
        if self.on_progress is not None:
            self.on_progress(progress)


class _StopRequestCallback(TrainerCallback):
    """Trainer callback that ends training after the current optimizer step once `should_stop()` is True.

    It also requests a checkpoint at that step, so a later run with resume=True loses no work.
    """

    def __init__(self, should_stop: StopPredicate | None) -> None:
        self.should_stop = should_stop
        self.stop_requested = False

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.should_stop is None or not self.should_stop():
            return
        self.stop_requested = True
        control.should_training_stop = True
        control.should_save = True


def main(argv: list[str] | None = None) -> int:
    """Run a fine-tune from the command line and print the result as JSON on stdout."""
    parser = argparse.ArgumentParser(
        prog="python -m app.training.finetune",
        description="Fine-tune a causal LM on an sftdesk snapshot (also under accelerate launch).",
    )
    parser.add_argument("--config", required=True, type=Path, help="JSON file with the FineTuneConfig fields.")
    parser.add_argument("--snapshot", required=True, type=Path, help=f"Snapshot directory with {TRAIN_FILE}.")
    parser.add_argument("--output", required=True, type=Path, help="Directory for checkpoints, adapter and result.")
    parser.add_argument("--resume", action="store_true", help="Continue from the newest checkpoint in --output.")
    args = parser.parse_args(argv)

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    try:
        config_data = json.loads(args.config.read_text(encoding="utf-8"))
        result = run_finetune(config_data, args.snapshot, args.output, resume=args.resume)
    except (OSError, json.JSONDecodeError, TrainingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    from accelerate import PartialState

    if PartialState().is_main_process:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
