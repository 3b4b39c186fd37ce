"""Fine-tune job: train on the snapshot's train split, then store a `Run(kind="finetune")`.

Checkpoints go to a directory fixed per job, and every attempt resumes from the newest one, so a
job taken over from a worker that died repeats at most `save_steps` steps.
"""

from typing import Any

from sqlalchemy.orm import Session

from app.jobs.context import JobContext, JobInterrupted, JobOutcome
from app.jobs.handlers.common import load_target
from app.jobs.models_dir import resolve_base_model, run_output_dir
from app.runs.models import Run

# Result keys copied into the run's report. The metrics go to Run.metrics.
REPORT_KEYS = (
    "data_report", "loss_history", "resumed_from", "checkpoint_path", "model_path", "peak_memory", "device",
    "precision", "gradient_checkpointing", "trainable_parameters", "total_parameters", "train_rows",
)


def run(context: JobContext) -> JobOutcome:
    from app.training.config import FineTuneConfig, parse_config

    config = parse_config(FineTuneConfig, context.params)
    target = load_target(context, need_snapshot=True)

    context.report("preparing", 0, 0)
    base_path, built = resolve_base_model(
        config.base_model, context.settings.model_dir, project_id=context.project_id,
    )
    if built:
        context.log(f"built the tiny model in {base_path}")
    output_dir = run_output_dir(context.settings.model_dir, target.project_slug, context.job_id, context.created_at)
    context.log(f"fine-tuning {config.base_model} on snapshot {target.snapshot_number}; output in {output_dir}")

    def on_progress(progress: dict[str, Any]) -> None:
        loss = progress.get("loss")
        context.report(
            "training", progress["step"], progress["total_steps"], loss=loss,
            eta_seconds=progress.get("eta_seconds"), epoch=progress.get("epoch"),
        )
        loss_text = f" loss {loss:.4f}" if loss is not None else ""
        context.log(f"step {progress['step']}/{progress['total_steps']}{loss_text}")

    from app.training.finetune import run_finetune

    result = run_finetune(
        config.model_copy(update={"base_model": base_path}), target.snapshot_dir, output_dir,
        on_progress=on_progress, should_stop=context.should_stop, resume=True,
    )
    if result["resumed_from"]:
        context.log(f"resumed from {result['resumed_from']}")
    if result["status"] == "stopped":
        context.log(f"stopped at step {result['train_metrics']['global_step']}; checkpoint saved")
        raise JobInterrupted("stopped")

    metrics = {
        **result["train_metrics"], "tokens_seen": result["tokens_seen"],
        "tokens_per_second": result["tokens_per_second"],
    }
    report = {key: result.get(key) for key in REPORT_KEYS}
    report["resolved_base_model"] = base_path
    stored_config = {**result["config"], "base_model": config.base_model}

    def write(db: Session) -> dict[str, Any]:
        run_row = Run(
            project_id=context.project_id, snapshot_id=target.snapshot_id, job_id=context.job_id, kind="finetune",
            base_model=config.base_model, adapter_path=result["adapter_path"], config=stored_config,
            metrics=metrics, report=report,
        )
        db.add(run_row)
        db.flush()
        return {"run_id": run_row.id}

    context.log(f"training finished at step {metrics['global_step']}")
    return JobOutcome(
        result={
            "train_loss": metrics.get("train_loss"), "global_step": metrics.get("global_step"),
            "adapter_path": result["adapter_path"], "model_path": result["model_path"],
        },
        write=write,
    )
