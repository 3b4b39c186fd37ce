"""Evaluate job: score a fine-tune run and its base model on a snapshot's validation split.

Each model gets a `Run(kind="evaluate")`: the fine-tuned one links to its fine-tune run through
parent_run_id, the base model's has parent_run_id NULL. The fine-tuned run's report names the
base evaluation (`base_run_id`) that the runs page compares it with. A base evaluation with the
same model, snapshot and settings is reused instead of being computed again.
"""

import math
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import unit_of_work
from app.jobs.context import JobContext, JobError, JobInterrupted, JobOutcome
from app.jobs.handlers.common import load_finetuned_model, load_target
from app.jobs.models_dir import resolve_base_model
from app.jobs.params import parse_evaluate_params
from app.runs.models import Run

METRIC_KEYS = (
    "validation_loss", "perplexity", "rouge_l", "bleu", "chrf", "stopped_on_eos_rate", "loss_examples", "loss_tokens",
)
REPORT_KEYS = ("samples", "data_report", "runtime_seconds", "peak_memory", "model_path", "adapter_path")
TARGET_FINETUNED = "finetuned"
TARGET_BASE = "base"


def _find_base_evaluation(project_id: int, snapshot_id: int | None, base_model: str, config: dict[str, Any]) -> int | None:
    with unit_of_work(write=False) as db:
        candidates = db.execute(
            select(Run.id, Run.config).where(
                Run.project_id == project_id, Run.snapshot_id == snapshot_id, Run.kind == "evaluate",
                Run.parent_run_id.is_(None), Run.adapter_path.is_(None), Run.base_model == base_model,
            ).order_by(Run.id.desc())
        ).all()
    for run_id, stored in candidates:
        if stored == config:
            return run_id
    return None


def run(context: JobContext) -> JobOutcome:
    from app.training.evaluate import run_evaluation

    params = parse_evaluate_params(context.params)
    target = load_target(context, need_snapshot=True)
    config = params.config.model_dump(mode="json")
    finetuned = load_finetuned_model(context.project_id, params.run_id) if params.run_id is not None else None
    base_reference = finetuned.base_model if finetuned is not None else params.base_model
    if base_reference is None:
        raise JobError("evaluate needs run_id or base_model")

    context.report("preparing", 0, 0)
    base_path, built = resolve_base_model(base_reference, context.settings.model_dir, project_id=context.project_id)
    if built:
        context.log(f"built the tiny model in {base_path}")

    def progress_for(model: str):
        def on_progress(event: dict[str, Any]) -> None:
            if context.should_stop():
                raise JobInterrupted("stopped")
            context.report(f"{event['phase']}", event["done"], event["total"], model=model)
        return on_progress

    finetuned_result = None
    if finetuned is not None:
        model_path = finetuned.model_path or base_path
        context.log(f"evaluating fine-tune run {finetuned.run_id} on snapshot {target.snapshot_number}")
        finetuned_result = run_evaluation(
            model_path, finetuned.adapter_path, target.snapshot_dir, config, on_progress=progress_for(TARGET_FINETUNED),
        )
        context.log(_summary("fine-tuned", finetuned_result))

    base_run_id = _find_base_evaluation(context.project_id, target.snapshot_id, base_reference, config)
    base_result = None
    if base_run_id is not None:
        context.log(f"reusing base model evaluation run {base_run_id}")
    else:
        context.log(f"evaluating base model {base_reference} on snapshot {target.snapshot_number}")
        base_result = run_evaluation(base_path, None, target.snapshot_dir, config, on_progress=progress_for(TARGET_BASE))
        context.log(_summary("base", base_result))

    def write(db: Session) -> dict[str, Any]:
        base_id = base_run_id
        if base_result is not None:
            base_row = _evaluation_run(context, target.snapshot_id, base_reference, None, None, config, base_result)
            db.add(base_row)
            db.flush()
            base_id = base_row.id
        stored: dict[str, Any] = {"base_run_id": base_id}
        if finetuned is not None and finetuned_result is not None:
            row = _evaluation_run(
                context, target.snapshot_id, base_reference, finetuned.adapter_path, finetuned.run_id, config,
                finetuned_result,
            )
            row.report["base_run_id"] = base_id
            db.add(row)
            db.flush()
            stored["run_id"] = row.id
        return stored

    result: dict[str, Any] = {"snapshot": target.snapshot_number, "finetune_run_id": params.run_id}
    if finetuned_result is not None:
        result["metrics"] = {key: _json_number(finetuned_result.get(key)) for key in METRIC_KEYS}
    if base_result is not None:
        result["base_metrics"] = {key: _json_number(base_result.get(key)) for key in METRIC_KEYS}
    return JobOutcome(result=result, write=write)


def _evaluation_run(
    context: JobContext, snapshot_id: int | None, base_model: str, adapter_path: str | None,
    parent_run_id: int | None, config: dict[str, Any], result: dict[str, Any],
) -> Run:
    return Run(
        project_id=context.project_id, snapshot_id=snapshot_id, job_id=context.job_id, parent_run_id=parent_run_id,
        kind="evaluate", base_model=base_model, adapter_path=adapter_path, config=config,
        metrics={key: _json_number(result.get(key)) for key in METRIC_KEYS},
        report={key: result.get(key) for key in REPORT_KEYS},
    )


def _json_number(value: Any) -> Any:
    """Return None for an infinite or NaN float (perplexity overflows past a loss of about 709), which JSON cannot hold."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _summary(label: str, result: dict[str, Any]) -> str:
    return (
        f"{label}: validation loss {result['validation_loss']:.4f}, perplexity {result['perplexity']:.2f}, "
        f"ROUGE-L {result['rouge_l']:.4f}, BLEU {result['bleu']:.4f}, chrF {result['chrf']:.4f}"
    )
