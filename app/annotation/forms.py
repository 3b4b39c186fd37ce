"""The workspace form: its field names, and parsing posted values into an AnnotationIn.

Field names: response, base_candidate_id, rating_<criterion key>, rank_<candidate id>,
preferred (candidate id of the pairwise winner), flags (repeated), note, version, submit_token.
"""

from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import ValidationError
from starlette.datastructures import FormData

from app.annotation.models import Annotation
from app.annotation.questions import AnnotationSettings
from app.annotation.schemas import AnnotationIn, Choice
from app.annotation.task import ItemTask
from app.errors import InvalidInput


async def posted_form(request: Request) -> FormData:
    """Read the request's form body; list it before the database dependencies so no lock is held meanwhile."""
    return await request.form()


PostedForm = Annotated[FormData, Depends(posted_form)]


def _int_field(form: FormData, name: str) -> int | None:
    raw = form.get(name)
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        return int(raw)
    except ValueError as error:
        raise InvalidInput(f"invalid {name} {raw!r}: expected a whole number") from error


def parse_form(form: FormData, settings: AnnotationSettings, task: ItemTask) -> AnnotationIn:
    ratings = {}
    for key in settings.criterion_keys():
        score = _int_field(form, f"rating_{key}")
        if score is not None:
            ratings[key] = score
    ranking = {}
    for candidate in task.ranked:
        rank = _int_field(form, f"rank_{candidate.id}")
        if rank is not None:
            ranking[str(candidate.id)] = rank
    choice = None
    preferred = _int_field(form, "preferred")
    if preferred is not None and task.pair:
        others = [c.id for c in task.pair if c.id != preferred]
        choice = Choice(preferred=preferred, other=others[0] if others else preferred)

    response = form.get("response")
    note = form.get("note")
    token = form.get("submit_token")
    try:
        return AnnotationIn(
            response=response if isinstance(response, str) else None,
            base_candidate_id=_int_field(form, "base_candidate_id"),
            ratings=ratings, ranking=ranking, choice=choice,
            flags=[flag for flag in form.getlist("flags") if isinstance(flag, str)],
            note=note if isinstance(note, str) else "",
            version=_int_field(form, "version") or 0,
            submit_token=token if isinstance(token, str) and token else None,
        )
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise InvalidInput(f"invalid annotation: {problems}") from error


def values_from_annotation(annotation: Annotation) -> dict[str, Any]:
    return {
        "response": annotation.response or "", "base_candidate_id": annotation.base_candidate_id,
        "ratings": annotation.ratings or {}, "ranking": annotation.ranking or {},
        "preferred": (annotation.choice or {}).get("preferred"), "flags": annotation.flags or [],
        "note": annotation.note or "", "version": annotation.version,
    }


def values_from_input(data: AnnotationIn) -> dict[str, Any]:
    return {
        "response": data.response or "", "base_candidate_id": data.base_candidate_id,
        "ratings": data.ratings, "ranking": data.ranking,
        "preferred": data.choice.preferred if data.choice else None, "flags": data.flags,
        "note": data.note, "version": data.version,
    }


def initial_values(task: ItemTask) -> dict[str, Any]:
    prefill = task.prefill
    return {
        "response": prefill.text if prefill else "", "base_candidate_id": prefill.id if prefill else None,
        "ratings": {}, "ranking": {}, "preferred": None, "flags": [], "note": "", "version": 0,
    }
