"""Assign items to the train or validation split, deterministically and grouped by prompt."""

import hashlib

SPLITS = ("train", "validation")


def assign_split(prompt_hash: str, seed: int, validation_fraction: float) -> str:
    """Return "train" or "validation" for an item with this prompt hash.

    The split depends only on the seed and the prompt hash (the sha256 of the normalized
    prompt), so items with the same prompt always land in the same split. The same seed
    gives the same assignment on every run and machine. About `validation_fraction` of
    the distinct prompts go to validation.
    """
    if not 0.0 <= validation_fraction <= 1.0:
        raise ValueError(f"validation_fraction must be between 0 and 1, got {validation_fraction}.")
    return "validation" if split_position(prompt_hash, seed) < validation_fraction else "train"


def split_position(prompt_hash: str, seed: int) -> float:
    """Return the prompt's place in [0, 1); prompts below the validation fraction go to validation."""
    digest = hashlib.sha256(f"{seed}:{prompt_hash}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
