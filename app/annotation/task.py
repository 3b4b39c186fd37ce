"""The task one annotator gets for one item: the candidates to rank, compare and edit."""

import hashlib
import random
from dataclasses import dataclass

from app.annotation.questions import AnnotationSettings
from app.items.models import Candidate

# Order of preference for the candidate that pre-fills the response editor, best first.
_PREFILL_ORDER = (("label", "reference"), ("source", "model"), ("label", "chosen"), ("source", "import"))


@dataclass(frozen=True)
class ItemTask:
    candidates: list[Candidate]
    # The two candidates of the pairwise question in the order shown (A left, B right), or None.
    pair: tuple[Candidate, Candidate] | None
    ranked: list[Candidate]
    prefill: Candidate | None

    def candidate(self, candidate_id: int | None) -> Candidate | None:
        return next((c for c in self.candidates if c.id == candidate_id), None)


def _seeded_random(item_id: int, user_id: int) -> random.Random:
    digest = hashlib.sha256(f"pairwise:{item_id}:{user_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def pairwise_pair(item_id: int, user_id: int, candidates: list[Candidate]) -> tuple[Candidate, Candidate] | None:
    """Pick two candidates and their left/right order, the same on every reload for this user."""
    if len(candidates) < 2:
        return None
    ordered = sorted(candidates, key=lambda c: c.id)
    left, right = _seeded_random(item_id, user_id).sample(ordered, 2)
    return left, right


def prefill_candidate(candidates: list[Candidate]) -> Candidate | None:
    for attribute, value in _PREFILL_ORDER:
        matches = [c for c in candidates if getattr(c, attribute) == value and c.text.strip()]
        if matches:
            # The newest model draft is the one worth editing; for imports the first is the original.
            return matches[-1] if value == "model" else matches[0]
    return None


def build_task(settings: AnnotationSettings, item_id: int, user_id: int, candidates: list[Candidate]) -> ItemTask:
    several = len(candidates) >= 2
    return ItemTask(
        candidates=candidates,
        pair=pairwise_pair(item_id, user_id, candidates) if settings.pairwise.enabled and several else None,
        ranked=candidates if settings.ranking.enabled and several else [],
        prefill=prefill_candidate(candidates) if settings.response.enabled and settings.response.prefill else None,
    )
