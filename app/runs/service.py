"""Runs: listing, lookup, and the comparison of fine-tuned models with their base models.

An evaluation of a fine-tune run is compared with the base model evaluation named in its report
(`base_run_id`), or else the newest evaluation of the same base model on the same snapshot.
"""

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.pagination import PageRequest
from app.projects.models import Project
from app.runs.models import Run
from app.snapshots.models import Snapshot
from app.training.metrics import COMPARED_METRICS, compare_metrics

RUN_KINDS = ("finetune", "evaluate")


def list_runs(
    db: Session, project: Project, page: PageRequest, *, kind: str | None = None, snapshot_number: int | None = None,
) -> tuple[list[Run], int]:
    conditions = [Run.project_id == project.id]
    if kind is not None:
        if kind not in RUN_KINDS:
            raise InvalidInput(f"invalid kind {kind!r}: use one of {', '.join(RUN_KINDS)}")
        conditions.append(Run.kind == kind)
    if snapshot_number is not None:
        snapshot_id = db.scalar(
            select(Snapshot.id).where(Snapshot.project_id == project.id, Snapshot.number == snapshot_number)
        )
        if snapshot_id is None:
            raise NotFound(f"snapshot {snapshot_number} not found in project {project.slug!r}")
        conditions.append(Run.snapshot_id == snapshot_id)
    total = db.scalar(select(func.count()).select_from(Run).where(*conditions)) or 0
    runs = db.scalars(
        select(Run).where(*conditions).order_by(Run.id.desc()).offset(page.offset).limit(page.page_size)
    ).all()
    return list(runs), total


def get_run(db: Session, project: Project, run_id: int) -> Run:
    """Load a run of this project. A run of another project raises NotFound, so its existence does not leak."""
    run = db.get(Run, run_id)
    if run is None or run.project_id != project.id:
        raise NotFound(f"run {run_id} not found in project {project.slug!r}")
    return run


def list_finetune_runs(db: Session, project: Project, limit: int) -> list[Run]:
    """Return the newest fine-tune runs, for the forms that start jobs."""
    return list(db.scalars(
        select(Run).where(Run.project_id == project.id, Run.kind == "finetune")
        .order_by(Run.id.desc()).limit(limit)
    ))


def base_runs_for(db: Session, runs: list[Run]) -> dict[int, Run]:
    """Return {evaluation run id: the base model evaluation it is compared with}."""
    evaluations = [run for run in runs if run.kind == "evaluate" and run.parent_run_id is not None]
    named = {run.id: (run.report or {}).get("base_run_id") for run in evaluations}
    base_ids = [base_id for base_id in named.values() if isinstance(base_id, int)]
    found = {run.id: run for run in db.scalars(select(Run).where(Run.id.in_(base_ids)))} if base_ids else {}
    pairs = {}
    for run in evaluations:
        base = found.get(named[run.id])
        if base is None:
            base = db.scalar(
                select(Run).where(
                    Run.project_id == run.project_id, Run.snapshot_id == run.snapshot_id, Run.kind == "evaluate",
                    Run.parent_run_id.is_(None), Run.base_model == run.base_model,
                ).order_by(Run.id.desc()).limit(1)
            )
        if base is not None:
            pairs[run.id] = base
    return pairs


def comparison(run: Run, base: Run | None) -> dict[str, dict[str, Any]] | None:
    if base is None:
        return None
    return compare_metrics(base.metrics or {}, run.metrics or {})


@dataclass
class ComparisonRow:
    """One line of the runs table: a base model or a fine-tuned model, scored on one snapshot."""

    evaluation: Run | None
    finetune: Run | None
    changes: dict[str, dict[str, Any]] | None = None


@dataclass
class SnapshotGroup:
    number: int
    rows: list[ComparisonRow] = field(default_factory=list)


@dataclass
class RunsOverview:
    groups: list[SnapshotGroup]
    # {metric: {"finetuned": [(snapshot number, value)], "base": [(snapshot number, value)]}}
    series: dict[str, dict[str, list[tuple[int, float]]]]


def _latest_by(runs: list[Run], key) -> list[Run]:
    latest: dict[Any, Run] = {}
    for run in sorted(runs, key=lambda r: r.id):
        latest[key(run)] = run
    return sorted(latest.values(), key=lambda r: r.id)


def overview(db: Session, project: Project, snapshot_numbers: list[int]) -> RunsOverview:
    """Build the comparison rows for the given snapshots and the metric series across every snapshot."""
    snapshots = dict(db.execute(select(Snapshot.id, Snapshot.number).where(Snapshot.project_id == project.id)).all())
    runs = list(db.scalars(select(Run).where(Run.project_id == project.id).order_by(Run.id)))
    by_id = {run.id: run for run in runs}
    evaluations = [run for run in runs if run.kind == "evaluate"]
    bases = base_runs_for(db, evaluations)

    groups = []
    for number in snapshot_numbers:
        snapshot_id = next((sid for sid, n in snapshots.items() if n == number), None)
        group = SnapshotGroup(number=number)
        here = [run for run in evaluations if run.snapshot_id == snapshot_id]
        for base in _latest_by([r for r in here if r.parent_run_id is None], key=lambda r: r.base_model):
            group.rows.append(ComparisonRow(evaluation=base, finetune=None))
        evaluated = set()
        for evaluation in _latest_by([r for r in here if r.parent_run_id is not None], key=lambda r: r.parent_run_id):
            evaluated.add(evaluation.parent_run_id)
            group.rows.append(ComparisonRow(
                evaluation=evaluation, finetune=by_id.get(evaluation.parent_run_id),
                changes=comparison(evaluation, bases.get(evaluation.id)),
            ))
        for run in runs:
            if run.kind == "finetune" and run.snapshot_id == snapshot_id and run.id not in evaluated:
                group.rows.append(ComparisonRow(evaluation=None, finetune=run))
        if group.rows:
            groups.append(group)

    series: dict[str, dict[str, list[tuple[int, float]]]] = {
        metric: {"finetuned": [], "base": []} for metric in COMPARED_METRICS
    }
    for snapshot_id, number in sorted(snapshots.items(), key=lambda pair: pair[1]):
        here = [run for run in evaluations if run.snapshot_id == snapshot_id]
        latest = {
            "finetuned": max((r for r in here if r.parent_run_id is not None), key=lambda r: r.id, default=None),
            "base": max((r for r in here if r.parent_run_id is None), key=lambda r: r.id, default=None),
        }
        for name, run in latest.items():
            if run is None:
                continue
            for metric in COMPARED_METRICS:
                value = (run.metrics or {}).get(metric)
                if isinstance(value, int | float):
                    series[metric][name].append((number, float(value)))
    return RunsOverview(groups=groups, series=series)


def snapshots_with_runs(db: Session, project: Project, page: PageRequest) -> tuple[list[int], int]:
    """Return one page of snapshot numbers that have runs, newest first, and how many there are."""
    query = (
        select(Snapshot.number).join(Run, Run.snapshot_id == Snapshot.id)
        .where(Snapshot.project_id == project.id).distinct()
    )
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    numbers = db.scalars(query.order_by(Snapshot.number.desc()).offset(page.offset).limit(page.page_size)).all()
    return list(numbers), total
