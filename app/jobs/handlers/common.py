"""Lookups that several handlers share: the job's project and snapshot, and fine-tune runs."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.db import unit_of_work
from app.jobs.context import JobContext, JobError
from app.projects.models import Project
from app.runs.models import Run
from app.snapshots.models import Snapshot


@dataclass(frozen=True)
class JobTarget:
    """The project a job belongs to and, when it has one, its snapshot directory."""

    project_id: int
    project_slug: str
    snapshot_id: int | None
    snapshot_number: int | None
    snapshot_dir: Path | None


@dataclass(frozen=True)
class FineTunedModel:
    """A finished fine-tune run, ready to load: its base model and its adapter or full model."""

    run_id: int
    base_model: str
    adapter_path: str | None
    model_path: str | None
    snapshot_id: int | None


def load_target(context: JobContext, *, need_snapshot: bool) -> JobTarget:
    with unit_of_work(write=False) as db:
        project = db.get(Project, context.project_id)
        if project is None:
            raise JobError(f"project {context.project_id} no longer exists")
        snapshot = db.get(Snapshot, context.snapshot_id) if context.snapshot_id is not None else None
        slug = project.slug
    if snapshot is None:
        if need_snapshot:
            raise JobError("the job's snapshot was deleted: start the job again on an existing snapshot")
        return JobTarget(context.project_id, slug, None, None, None)
    if snapshot.status != "ready":
        raise JobError(f"snapshot {snapshot.number} has status {snapshot.status!r}: freeze a new snapshot")
    directory = context.settings.snapshot_dir / slug / str(snapshot.number)
    if not directory.is_dir():
        raise JobError(
            f"the files of snapshot {snapshot.number} are missing from the data directory ({directory}). "
            "Freeze a new snapshot."
        )
    return JobTarget(context.project_id, slug, snapshot.id, snapshot.number, directory)


def load_finetuned_model(project_id: int, run_id: Any) -> FineTunedModel:
    with unit_of_work(write=False) as db:
        run = db.get(Run, run_id) if isinstance(run_id, int) else None
        if run is None or run.project_id != project_id or run.kind != "finetune":
            raise JobError(f"fine-tune run {run_id} not found in this project")
        model_path = (run.report or {}).get("model_path")
        if run.adapter_path is None and model_path is None:
            raise JobError(f"run {run_id} saved no adapter or model to load")
        return FineTunedModel(
            run_id=run.id, base_model=run.base_model, adapter_path=run.adapter_path, model_path=model_path,
            snapshot_id=run.snapshot_id,
        )
