"""Train/validation split assignment."""

import pytest

from app.items.records import Message, prompt_hash
from app.snapshots.splits import assign_split


def hashes(count: int) -> list[str]:
    return [prompt_hash([Message("user", f"prompt number {number}")]) for number in range(count)]


def test_assignment_is_deterministic():
    digests = hashes(200)

    first = [assign_split(digest, 7, 0.2) for digest in digests]
    second = [assign_split(digest, 7, 0.2) for digest in digests]

    assert first == second


def test_seed_changes_assignment():
    digests = hashes(200)

    seed_one = [assign_split(digest, 1, 0.5) for digest in digests]
    seed_two = [assign_split(digest, 2, 0.5) for digest in digests]

    assert seed_one != seed_two


def test_fraction_is_respected_approximately():
    splits = [assign_split(digest, 0, 0.1) for digest in hashes(10_000)]

    validation = splits.count("validation")
    assert 850 <= validation <= 1150
    assert splits.count("train") == 10_000 - validation


def test_same_normalized_prompt_lands_in_one_split():
    variants = [
        [Message("user", "What is the capital of France?")],
        [Message("user", "what is the capital of france?")],
        [Message("user", "  What is the   capital of France?\n")],
    ]

    for seed in range(20):
        assert len({assign_split(prompt_hash(messages), seed, 0.5) for messages in variants}) == 1


def test_fraction_bounds():
    digest = hashes(1)[0]

    assert assign_split(digest, 3, 0.0) == "train"
    assert assign_split(digest, 3, 1.0) == "validation"
    with pytest.raises(ValueError, match="between 0 and 1"):
        assign_split(digest, 3, 1.5)
