from datetime import datetime
from typing import Any

from pydantic import BaseModel


class MessageOut(BaseModel):
    role: str
    content: str


class CandidateOut(BaseModel):
    id: int
    text: str
    source: str
    label: str | None
    rank: int | None
    model_name: str | None
    created_at: datetime


class ItemOut(BaseModel):
    id: int
    external_id: str | None
    status: str
    priority: int
    annotation_count: int
    messages: list[MessageOut]
    tools: str | None
    metadata: dict[str, Any]
    record_number: int | None
    import_id: int | None
    created_at: datetime


class ItemDetailOut(ItemOut):
    candidates: list[CandidateOut]


class ImportRowErrorOut(BaseModel):
    record: int
    reason: str


class ImportOut(BaseModel):
    import_id: int
    filename: str | None
    shape: str | None
    created: int
    duplicates: int
    rejected: int
    created_at: datetime


def item_out(item, candidates=None) -> dict[str, Any]:
    data = {
        "id": item.id, "external_id": item.external_id, "status": item.status, "priority": item.priority,
        "annotation_count": item.annotation_count, "messages": item.messages, "tools": item.tools,
        "metadata": item.meta or {}, "record_number": item.record_number, "import_id": item.import_batch_id,
        "created_at": item.created_at,
    }
    if candidates is not None:
        data["candidates"] = [
            {
                "id": c.id, "text": c.text, "source": c.source, "label": c.label, "rank": c.rank,
                "model_name": c.model_name, "created_at": c.created_at,
            }
            for c in candidates
        ]
    return data
