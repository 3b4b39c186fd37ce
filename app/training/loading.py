"""Loading tokenizers and models, choosing the device and precision, and measuring peak memory.

Shared by fine-tuning, evaluation and generation. Importing this module imports torch.
"""

import resource
import sys
from pathlib import Path
from typing import Any, Literal

import torch

from app.training.errors import TrainingError

Precision = Literal["fp32", "bf16", "fp16"]

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def disable_progress_bars() -> None:
    """Turn off the tqdm bars of transformers and datasets, which would fill the worker's log."""
    import datasets
    import transformers

    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()


def select_device() -> torch.device:
    """Return the first CUDA device when there is one, else the CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def resolve_precision(requested: str) -> Precision:
    """Turn "auto" into bf16 on a CUDA GPU that supports it, else fp32; reject bf16 and fp16 without CUDA."""
    has_cuda = torch.cuda.is_available()
    if requested == "auto":
        return "bf16" if has_cuda and torch.cuda.is_bf16_supported() else "fp32"
    if requested in ("bf16", "fp16") and not has_cuda:
        raise TrainingError(f"precision {requested} needs a CUDA GPU and none was found; use precision auto or fp32")
    return requested  # type: ignore[return-value]


def torch_dtype(precision: Precision) -> torch.dtype:
    """Return the torch dtype of a precision name."""
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def load_tokenizer(model_path: str | Path, adapter_path: str | Path | None = None) -> Any:
    """Load the tokenizer saved beside an adapter when there is one, else the base model's tokenizer.

    A fine-tuning run saves its tokenizer, with the chat template it trained with, next to the adapter.
    """
    from transformers import AutoTokenizer

    source = model_path
    if adapter_path is not None and any((Path(adapter_path) / name).is_file() for name in _TOKENIZER_FILES):
        source = adapter_path
    return AutoTokenizer.from_pretrained(str(source))


def load_model_for_inference(
    model_path: str | Path,
    adapter_path: str | Path | None = None,
    device: torch.device | None = None,
) -> Any:
    """Load a causal LM (and a LoRA adapter on top of it when given) in eval mode on `device`.

    Uses bf16 on a CUDA GPU that supports it and fp32 otherwise.
    """
    from transformers import AutoModelForCausalLM

    device = device or select_device()
    dtype = torch_dtype(resolve_precision("auto"))
    model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=dtype)
    if adapter_path is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_path))
    model.to(device)
    model.eval()
    return model


def peak_memory() -> dict[str, int | None]:
    """Return the process's peak resident memory and, on CUDA, the peak memory allocated by torch, in bytes.

    The RSS peak covers the whole process lifetime, so it includes anything loaded before training.
    """
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in kilobytes on Linux and in bytes on macOS.
    peak_rss_bytes = max_rss if sys.platform == "darwin" else max_rss * 1024
    peak_cuda_bytes = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    return {"peak_rss_bytes": peak_rss_bytes, "peak_cuda_bytes": peak_cuda_bytes}
