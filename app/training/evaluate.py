"""Evaluation of a base model or a fine-tuned adapter on a snapshot's validation split.

Two measurements on the same examples, so that runs can be compared:

- validation loss and perplexity over assistant tokens only, with the labels that fine-tuning uses
  (token-weighted: every assistant token of every example counts once);
- greedy responses of at most `max_new_tokens` tokens to the first `max_examples` prompts, scored
  against the reference responses with ROUGE-L, BLEU and chrF (see `app.training.metrics`).
"""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from app.training.config import EvaluateConfig, parse_config
from app.training.data import (
    VALIDATION_FILE,
    ConversationEncoder,
    TokenizedExample,
    prepare_split,
    require_examples,
    snapshot_file,
)
from app.training.errors import TrainingDataError
from app.training.metrics import perplexity, score_generations

logger = structlog.get_logger(__name__)

ProgressCallback = Callable[[dict[str, Any]], None]


def run_evaluation(
    model_path: str | Path,
    adapter_path: str | Path | None,
    snapshot_dir: str | Path,
    config: EvaluateConfig | dict[str, Any],
    on_progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Evaluate `model_path` (with the LoRA adapter at `adapter_path`, if given) on the validation split.

    `on_progress` receives `{phase, done, total}` with phase "loss" or "generation" after each batch.
    Returns a JSON-ready dict with validation_loss, perplexity, rouge_l, bleu, chrf (0-1), the share
    of generated responses that ended on EOS, a few samples and the data report of the validation file.
    Raises ConfigError, TrainingDataError or ChatTemplateError.
    """
    config = parse_config(EvaluateConfig, config)
    validation_path = snapshot_file(snapshot_dir, VALIDATION_FILE)
    started = time.monotonic()

    from app.training.generate import generate_with_model
    from app.training.loading import (
        disable_progress_bars,
        load_model_for_inference,
        load_tokenizer,
        peak_memory,
    )

    disable_progress_bars()
    log = logger.bind(model_path=str(model_path), adapter_path=str(adapter_path) if adapter_path else None)
    log.info("evaluation_started")

    tokenizer = load_tokenizer(model_path, adapter_path)
    encoder = ConversationEncoder(tokenizer)
    split = prepare_split(encoder, validation_path, config.max_length)
    require_examples(split)
    model = load_model_for_inference(model_path, adapter_path)

    loss_sum, loss_tokens = _sum_assistant_loss(model, split.examples, config.batch_size, encoder, on_progress)
    if loss_tokens == 0:
        raise TrainingDataError(f"{VALIDATION_FILE} has no assistant token to compute a loss on")
    mean_loss = loss_sum / loss_tokens

    conversations = split.conversations[: config.max_examples]
    generated = generate_with_model(
        model,
        encoder,
        [conversation.prompt for conversation in conversations],
        config.max_new_tokens,
        batch_size=config.batch_size,
        on_batch=_phase_reporter("generation", on_progress),
    )
    predictions = [output.text for output in generated]
    references = [conversation.response for conversation in conversations]
    scores = score_generations(predictions, references)

    result = {
        "model_path": str(model_path),
        "adapter_path": str(adapter_path) if adapter_path is not None else None,
        "validation_loss": mean_loss,
        "perplexity": perplexity(mean_loss),
        "loss_examples": len(split.examples),
        "loss_tokens": loss_tokens,
        **scores,
        "stopped_on_eos_rate": sum(output.stopped_on_eos for output in generated) / len(generated),
        "samples": [
            {
                "index": conversation.index,
                "prompt": conversation.prompt,
                "reference": reference,
                "prediction": prediction,
            }
            for conversation, reference, prediction in list(zip(conversations, references, predictions))[
                : config.sample_count
            ]
        ],
        "config": config.model_dump(mode="json"),
        "data_report": split.report,
        "runtime_seconds": time.monotonic() - started,
        "peak_memory": peak_memory(),
    }
    log.info(
        "evaluation_finished",
        validation_loss=result["validation_loss"],
        rouge_l=result["rouge_l"],
        bleu=result["bleu"],
        chrf=result["chrf"],
    )
    return result


def _sum_assistant_loss(
    model: Any,
    examples: list[TokenizedExample],
    batch_size: int,
    encoder: ConversationEncoder,
    on_progress: ProgressCallback | None,
) -> tuple[float, int]:
    """Return the summed next-token loss over assistant labels and the number of labels it covers."""
    import torch
    import torch.nn.functional as functional

    device = next(model.parameters()).device
    pad_token_id = encoder.tokenizer.pad_token_id
    if pad_token_id is None:
        pad_token_id = encoder.eos_token_id
    report_batch = _phase_reporter("loss", on_progress)

    loss_sum = 0.0
    loss_tokens = 0
    for batch_start in range(0, len(examples), batch_size):
        batch = examples[batch_start : batch_start + batch_size]
        width = max(len(example.input_ids) for example in batch)
        input_ids = torch.full((len(batch), width), pad_token_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, example in enumerate(batch):
            length = len(example.input_ids)
            input_ids[row, :length] = torch.tensor(example.input_ids)
            labels[row, :length] = torch.tensor(example.labels)
            attention_mask[row, :length] = 1

        with torch.inference_mode():
            logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
        # Position t predicts token t + 1.
        shifted_logits = logits[:, :-1, :].float()
        shifted_labels = labels[:, 1:].to(device)
        loss_sum += functional.cross_entropy(
            shifted_logits.reshape(-1, shifted_logits.shape[-1]),
            shifted_labels.reshape(-1),
            ignore_index=-100,
            reduction="sum",
        ).item()
        loss_tokens += int((shifted_labels != -100).sum().item())
        report_batch(min(batch_start + batch_size, len(examples)), len(examples))

    return loss_sum, loss_tokens


def _phase_reporter(phase: str, on_progress: ProgressCallback | None) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        if on_progress is not None:
            on_progress({"phase": phase, "done": done, "total": total})

    return report
