"""Suggest job: draft responses for pending items with a chosen model, for annotators to edit.

Pending items have status "new" and no model-drafted candidate yet. They are taken by priority,
then age, up to the job's limit. Drafts are written after every chunk of generations, each chunk
in its own transaction that checks the lease. A job taken over by another worker therefore
continues with the items still pending instead of starting again. An empty generation is not
stored, so its item stays pending for a later job.
"""

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import exists, select

from app.db import unit_of_work
from app.items.models import Candidate, Item
from app.jobs import queue
from app.jobs.context import JobContext, JobOutcome
from app.jobs.handlers.common import load_finetuned_model
from app.jobs.models_dir import resolve_base_model
from app.jobs.params import SuggestParams, parse_suggest_params

# Conversations per request batch for an OpenAI-compatible server, between progress updates.
ENDPOINT_CHUNK = 8

Generate = Callable[[Sequence[list[dict[str, str]]]], list[str]]


def _pending_condition(project_id: int):
    drafted = exists().where(Candidate.item_id == Item.id, Candidate.source == "model")
    return (Item.project_id == project_id, Item.status == "new", ~drafted)


def pending_items(project_id: int, limit: int) -> list[tuple[int, list[dict[str, str]]]]:
    """Return (item id, conversation) of up to `limit` pending items, highest priority first."""
    with unit_of_work(write=False) as db:
        rows = db.execute(
            select(Item.id, Item.messages).where(*_pending_condition(project_id))
            .order_by(Item.priority.desc(), Item.id).limit(limit)
        ).all()
    return [(row.id, list(row.messages)) for row in rows]


def _unknown_role(messages: list[dict[str, str]]) -> str | None:
    from app.training.data import ROLE_MAPPING

    for message in messages:
        if message.get("role") not in ROLE_MAPPING:
            return str(message.get("role"))
    return None


class _Model:
    """The chosen model, loaded once, with the name and run that drafts are credited to."""

    def __init__(self, generate: Generate, chunk_size: int, model_name: str, run_id: int | None) -> None:
        self.generate = generate
        self.chunk_size = chunk_size
        self.model_name = model_name
        self.run_id = run_id


def _load_local(model_path: str, adapter_path: str | None, generation: dict[str, Any]) -> Generate:
    from app.training.data import ConversationEncoder
    from app.training.generate import generate_with_model
    from app.training.loading import disable_progress_bars, load_model_for_inference, load_tokenizer

    disable_progress_bars()
    # Drafting only renders prompts, so the chat template needs no {% generation %} markers.
    encoder = ConversationEncoder(load_tokenizer(model_path, adapter_path), for_training=False)
    model = load_model_for_inference(model_path, adapter_path)

    def generate(conversations: Sequence[list[dict[str, str]]]) -> list[str]:
        outputs = generate_with_model(
            model, encoder, conversations, generation["max_new_tokens"], batch_size=generation["batch_size"],
            temperature=generation["temperature"],
        )
        return [output.text for output in outputs]

    return generate


def _load_model(context: JobContext, params: SuggestParams) -> _Model:
    generation = params.generation
    if params.source == "endpoint":
        from app.training.generate import generate_openai_compatible

        base_url = context.settings.suggest_endpoint_url or ""
        api_key = context.settings.suggest_endpoint_api_key
        model_name = params.model or ""

        def generate(conversations: Sequence[list[dict[str, str]]]) -> list[str]:
            return generate_openai_compatible(
                base_url, model_name, conversations, api_key=api_key, timeout_s=generation["timeout_s"],
                max_new_tokens=generation["max_new_tokens"], temperature=generation["temperature"],
            )

        context.log(f"drafting with model {model_name} on the configured endpoint")
        return _Model(generate, ENDPOINT_CHUNK, model_name, None)

    if params.source == "run":
        finetuned = load_finetuned_model(context.project_id, params.run_id)
        base_path, built = resolve_base_model(
            finetuned.base_model, context.settings.model_dir, project_id=context.project_id,
        )
        model_path, adapter_path = finetuned.model_path or base_path, finetuned.adapter_path
        model_name, run_id = finetuned.base_model, finetuned.run_id
        context.log(f"drafting with fine-tune run {run_id}")
    else:
        model_path, built = resolve_base_model(params.model or "", context.settings.model_dir, project_id=context.project_id)
        adapter_path, model_name, run_id = None, params.model or "", None
        context.log(f"drafting with base model {model_name}")
    if built:
        context.log(f"built the tiny model in {model_path}")
    generate = _load_local(model_path, adapter_path, generation)
    return _Model(generate, generation["batch_size"], model_name, run_id)


def _store_drafts(context: JobContext, model: _Model, drafts: list[tuple[int, str]]) -> int:
    """Insert drafts for items that are still pending, and return how many were stored."""
    if not drafts:
        return 0
    with unit_of_work() as db:
        if not queue.lock_lease(db, context.lease):
            raise context.lease_lost()
        still_pending = set(db.scalars(
            select(Item.id).where(*_pending_condition(context.project_id), Item.id.in_([item_id for item_id, _ in drafts]))
        ))
        rows = [
            Candidate(item_id=item_id, text=text, source="model", model_name=model.model_name, run_id=model.run_id)
            for item_id, text in drafts if item_id in still_pending
        ]
        db.add_all(rows)
    return len(rows)


def run(context: JobContext) -> JobOutcome:
    # Raises InvalidInput for source "endpoint" when this worker has no endpoint URL configured.
    params = parse_suggest_params(context.params, endpoint_url=context.settings.suggest_endpoint_url)
    items = pending_items(context.project_id, params.limit)
    context.log(f"{len(items)} pending items to draft for (limit {params.limit})")
    if not items:
        return JobOutcome(result={"drafted": 0, "empty": 0, "skipped": 0, "pending_found": 0})

    context.report("preparing", 0, len(items))
    model = _load_model(context, params)

    drafted = empty = skipped = 0
    done = 0
    for start in range(0, len(items), model.chunk_size):
        context.raise_if_stopped()
        chunk = items[start:start + model.chunk_size]
        usable = []
        for item_id, messages in chunk:
            role = _unknown_role(messages)
            if role is not None:
                skipped += 1
                context.log(f"item {item_id} skipped: unknown role {role!r}")
            else:
                usable.append((item_id, messages))
        texts = model.generate([messages for _, messages in usable]) if usable else []
        drafts = []
        for (item_id, _), text in zip(usable, texts, strict=True):
            if text.strip():
                drafts.append((item_id, text))
            else:
                empty += 1
        stored = _store_drafts(context, model, drafts)
        drafted += stored
        skipped += len(drafts) - stored
        done += len(chunk)
        context.report("drafting", done, len(items))

    context.log(f"{drafted} drafts stored, {empty} empty generations, {skipped} items skipped")
    return JobOutcome(result={
        "drafted": drafted, "empty": empty, "skipped": skipped, "pending_found": len(items),
        "model_name": model.model_name, "run_id": model.run_id,
    })
