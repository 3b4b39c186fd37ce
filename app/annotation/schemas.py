"""Request and response bodies of the annotation API."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.items.schemas import ItemDetailOut

# A note longer than this is almost certainly a paste into the wrong field.
MAX_NOTE_CHARS = 20_000


class Choice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    preferred: int = Field(description="id of the better candidate")
    other: int = Field(description="id of the other candidate shown")


class AnnotationIn(BaseModel):
    """An annotation as the annotator saves it; drafts may leave required questions empty."""

    model_config = ConfigDict(extra="forbid")

    response: str | None = Field(None, description="the final assistant turn")
    base_candidate_id: int | None = Field(None, description="candidate the response was edited from")
    ratings: dict[str, int] = Field(default_factory=dict, description="rubric criterion key -> score")
    ranking: dict[str, int] = Field(
        default_factory=dict, description="candidate id -> rank, 1 best; equal ranks are ties"
    )
    choice: Choice | None = None
    flags: list[str] = Field(default_factory=list)
    note: str = Field("", max_length=MAX_NOTE_CHARS)
    version: int = Field(0, ge=0, description="version you edited (from the last response); 0 for a new one")
    submit_token: str | None = Field(
        None, min_length=8, max_length=64, description="idempotency key: a repeated submit with it stores once",
    )


class AnnotationOut(BaseModel):
    id: int
    item_id: int
    username: str | None = None
    status: str
    version: int
    response: str | None
    base_candidate_id: int | None
    ratings: dict[str, int]
    ranking: dict[str, int]
    choice: dict[str, Any]
    flags: list[str]
    note: str
    time_spent_ms: int
    submitted_at: datetime | None
    updated_at: datetime


class LeaseOut(BaseModel):
    leased_at: datetime
    expires_at: datetime
    resumed: bool


class NextOut(BaseModel):
    """The leased item, or item null with the reason and a message for the annotator."""

    item: ItemDetailOut | None
    lease: LeaseOut | None
    annotation: AnnotationOut | None = None
    reason: str | None = None
    message: str | None = None


class HistoryOut(BaseModel):
    version: int
    status: str
    username: str | None
    data: dict[str, Any]
    created_at: datetime


class ProgressOut(BaseModel):
    project_done: int
    project_total: int
    mine: int
    mine_remaining: int


def annotation_out(annotation, username: str | None = None) -> AnnotationOut:
    return AnnotationOut(
        id=annotation.id, item_id=annotation.item_id, username=username, status=annotation.status,
        version=annotation.version, response=annotation.response, base_candidate_id=annotation.base_candidate_id,
        ratings=annotation.ratings or {}, ranking=annotation.ranking or {}, choice=annotation.choice or {},
        flags=annotation.flags or [], note=annotation.note or "", time_spent_ms=annotation.time_spent_ms or 0,
        submitted_at=annotation.submitted_at, updated_at=annotation.updated_at,
    )
