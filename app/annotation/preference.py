"""Preference pairs (chosen, rejected) derived from an annotation's ranking or pairwise choice."""

from typing import Any


def preference_pair(ranking: dict[str, int] | None, choice: dict[str, Any] | None) -> tuple[int, int] | None:
    """Return (chosen candidate id, rejected candidate id), or None when the annotation prefers nothing.

    A pairwise choice wins over a ranking. From a ranking the pair is a best-ranked candidate and a
    worst-ranked one, taking the lowest id among equals. A ranking whose candidates all tie gives
    no pair.
    """
    choice = choice or {}
    preferred, other = choice.get("preferred"), choice.get("other")
    if preferred is not None and other is not None and preferred != other:
        return int(preferred), int(other)

    ordered = sorted((rank, int(candidate_id)) for candidate_id, rank in (ranking or {}).items())
    if len(ordered) < 2 or ordered[0][0] == ordered[-1][0]:
        return None
    worst_rank = ordered[-1][0]
    rejected = next(candidate_id for rank, candidate_id in ordered if rank == worst_rank)
    return ordered[0][1], rejected
