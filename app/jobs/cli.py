"""Command-line commands for jobs: start fine-tune, evaluate and suggest jobs, list and cancel them,
run a worker, and build the tiny demo model. `register` adds them to the main `sftdesk` command.

Imports stay inside the commands, so `sftdesk --help` loads neither the database nor the ML stack.
"""

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

# Seconds between status checks of `--wait`.
WAIT_POLL_S = 2.0


def _main_cli():
    from app import cli

    return cli


def _parse_settings(assignments: list[str] | None, config_file: Path | None) -> dict[str, Any]:
    """Merge a JSON config file and KEY=VALUE options. A value that parses as JSON is read as JSON, else as text."""
    cli = _main_cli()
    params: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            cli._fail(f"cannot read --config {str(config_file)!r}: {error}")
        if not isinstance(loaded, dict):
            cli._fail(f"--config {str(config_file)!r} must hold a JSON object")
        params.update(loaded)
    for assignment in assignments or []:
        key, sep, value = assignment.partition("=")
        if not sep or not key.strip():
            cli._fail(f"invalid --set {assignment!r}: write KEY=VALUE, for example --set learning_rate=0.001")
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    return params


def _queue_job(project: str, kind: str, params: dict[str, Any], snapshot: int | None, wait: bool) -> None:
    from app.db import unit_of_work
    from app.errors import DomainError
    from app.jobs import service

    cli = _main_cli()
    cli._prepare()
    settings = cli._settings()
    target = cli._load_project(project)
    try:
        with unit_of_work() as db:
            job = service.create_job(db, target, kind=kind, params=params, settings=settings, snapshot_number=snapshot)
            job_id = job.id
    except DomainError as error:
        cli._fail(error.message)
    typer.echo(f"queued {kind} job {job_id} in project {project!r}; a worker ('sftdesk worker') runs it")
    if wait:
        _wait_for(target, job_id)


def _progress_text(progress: dict[str, Any]) -> str:
    from app.jobs.display import format_duration

    parts = [str(progress.get("phase") or "")]
    if progress.get("total_steps"):
        parts.append(f"{progress.get('step', 0)}/{progress['total_steps']}")
    if progress.get("loss") is not None:
        parts.append(f"loss {progress['loss']:.4f}")
    if progress.get("eta_seconds") is not None:
        parts.append(f"{format_duration(progress['eta_seconds'])} left")
    return " ".join(part for part in parts if part)


def _wait_for(project, job_id: int) -> None:
    from app.db import unit_of_work
    from app.jobs.models import Job

    last = None
    while True:
        with unit_of_work(write=False) as db:
            job = db.get(Job, job_id)
            status, progress, error, result = job.status, dict(job.progress or {}), job.error, dict(job.result or {})
        line = f"job {job_id}: {status} {_progress_text(progress) if status == 'running' else ''}".rstrip()
        if line != last:
            typer.echo(line)
            last = line
        if status in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(WAIT_POLL_S)
    if status == "failed":
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=1)
    if result:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))


ProjectOption = Annotated[str, typer.Option("--project", "-p", help="project slug")]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="a config field as KEY=VALUE, e.g. --set lora_r=8 (repeatable)")
]
ConfigOption = Annotated[Path | None, typer.Option("--config", help="JSON file with config fields")]
WaitOption = Annotated[bool, typer.Option("--wait", help="wait for the job to end and print its progress")]


def finetune(
    project: ProjectOption,
    snapshot: Annotated[int, typer.Option(help="snapshot number to train on")],
    base_model: Annotated[str, typer.Option(help="Hugging Face model id, local directory, or 'tiny'")] = "tiny",
    max_steps: Annotated[int | None, typer.Option(help="optimizer steps, overriding --epochs")] = None,
    epochs: Annotated[float | None, typer.Option(help="passes over the train split (default 1)")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="peak learning rate (default 0.0002)")] = None,
    assignments: SetOption = None, config_file: ConfigOption = None, wait: WaitOption = False,
) -> None:
    """Queue a fine-tune (LoRA by default) of a base model on a snapshot's train split."""
    params = {"base_model": base_model, **_parse_settings(assignments, config_file)}
    for key, value in (("max_steps", max_steps), ("num_train_epochs", epochs), ("learning_rate", learning_rate)):
        if value is not None:
            params[key] = value
    _queue_job(project, "finetune", params, snapshot, wait)


def evaluate(
    project: ProjectOption,
    run: Annotated[int | None, typer.Option("--run", help="fine-tune run id, evaluated together with its base model")] = None,
    base_model: Annotated[str | None, typer.Option(help="evaluate this base model alone instead of a run")] = None,
    snapshot: Annotated[int | None, typer.Option(help="snapshot whose validation split is used (default: the run's)")] = None,
    assignments: SetOption = None, config_file: ConfigOption = None, wait: WaitOption = False,
) -> None:
    """Queue an evaluation: validation loss, perplexity, ROUGE-L, BLEU and chrF."""
    params = {"run_id": run, "base_model": base_model, **_parse_settings(assignments, config_file)}
    _queue_job(project, "evaluate", params, snapshot, wait)


def suggest(
    project: ProjectOption,
    run: Annotated[int | None, typer.Option("--run", help="draft with this fine-tune run")] = None,
    model: Annotated[str | None, typer.Option(help="draft with this base model (id, directory or 'tiny')")] = None,
    endpoint_model: Annotated[
        str | None, typer.Option(help="draft with this model name on the configured SFTDESK_SUGGEST_ENDPOINT_URL")
    ] = None,
    limit: Annotated[int, typer.Option(help="pending items to draft for")] = 50,
    snapshot: Annotated[int | None, typer.Option(help="recorded with the job, which does not read it")] = None,
    assignments: SetOption = None, config_file: ConfigOption = None, wait: WaitOption = False,
) -> None:
    """Queue drafts of responses for pending items (status new, no model draft yet)."""
    chosen = [name for name, value in (("--run", run), ("--model", model), ("--endpoint-model", endpoint_model)) if value is not None]
    if len(chosen) != 1:
        _main_cli()._fail("choose the model with exactly one of --run, --model or --endpoint-model")
    if run is not None:
        source: dict[str, Any] = {"source": "run", "run_id": run}
    elif model is not None:
        source = {"source": "model", "model": model}
    else:
        source = {"source": "endpoint", "model": endpoint_model}
    params = {**source, "limit": limit, **_parse_settings(assignments, config_file)}
    _queue_job(project, "suggest", params, snapshot, wait)


def jobs(
    project: ProjectOption,
    status: Annotated[str | None, typer.Option(help="queued, running, succeeded, failed or cancelled")] = None,
    kind: Annotated[str | None, typer.Option(help="finetune, evaluate or suggest")] = None,
    page: Annotated[int, typer.Option(help="1-based page")] = 1,
    page_size: Annotated[int, typer.Option(help="jobs per page")] = 50,
) -> None:
    """List a project's jobs, newest first."""
    from app.db import unit_of_work
    from app.errors import DomainError
    from app.jobs import service
    from app.pagination import page_request

    cli = _main_cli()
    cli._prepare()
    target = cli._load_project(project)
    try:
        request = page_request(page, page_size)
        with unit_of_work(write=False) as db:
            found, total = service.list_jobs(db, target, request, status=status, kind=kind)
            numbers = service.snapshot_numbers(db, {job.snapshot_id for job in found})
            rows = [
                (job.id, job.kind, job.status, numbers.get(job.snapshot_id, "-"), job.attempts, job.max_attempts,
                 job.created_at, _progress_text(job.progress or {}) if job.status == "running" else (job.error or ""))
                for job in found
            ]
    except DomainError as error:
        cli._fail(error.message)
    typer.echo(f"{'id':>6}  {'kind':<9} {'status':<10} {'snap':>4}  {'tries':>5}  {'created (UTC)':<16}  progress / error")
    for job_id, job_kind, job_status, number, attempts, max_attempts, created, detail in rows:
        typer.echo(
            f"{job_id:>6}  {job_kind:<9} {job_status:<10} {number!s:>4}  {attempts}/{max_attempts:<3}  "
            f"{created:%Y-%m-%d %H:%M}  {detail}"
        )
    pages = max(1, -(-total // request.page_size))
    typer.echo(f"page {request.page} of {pages}, {total} jobs in all")


def cancel_job(
    job_id: Annotated[int, typer.Argument(help="job id")], project: ProjectOption,
) -> None:
    """Cancel a queued job, or ask the worker of a running job to stop it."""
    from app.db import unit_of_work
    from app.errors import DomainError
    from app.jobs import service

    cli = _main_cli()
    cli._prepare()
    target = cli._load_project(project)
    try:
        with unit_of_work() as db:
            job = service.cancel_job(db, target, job_id)
            status = job.status
    except DomainError as error:
        cli._fail(error.message)
    typer.echo(f"job {job_id}: {'cancelled' if status == 'cancelled' else 'cancel requested; the worker stops it within seconds'}")


def worker(
    max_jobs: Annotated[int | None, typer.Option(help="exit after this many jobs")] = None,
    exit_when_idle: Annotated[bool, typer.Option(help="exit when no job is ready instead of waiting")] = False,
    kind: Annotated[list[str] | None, typer.Option(help="only run jobs of this kind (repeatable)")] = None,
    retry_base_s: Annotated[
        float, typer.Option(help="seconds before the first retry, doubled per attempt up to 600")
    ] = 10.0,
) -> None:
    """Run a job worker: claims queued jobs and runs them until SIGTERM or Ctrl-C."""
    from app.jobs.worker import run_worker

    cli = _main_cli()
    cli._prepare()
    ran = run_worker(max_jobs=max_jobs, exit_when_idle=exit_when_idle, kinds=kind, retry_base_s=retry_base_s)
    typer.echo(f"worker ran {ran} jobs")


def tiny_model(
    project: Annotated[str | None, typer.Option("--project", "-p", help="add this project's texts to the tokenizer corpus")] = None,
    force: Annotated[bool, typer.Option(help="build again even if the model exists")] = False,
) -> None:
    """Build the tiny demo model into models/tiny in the data directory, without downloading anything."""
    from app.jobs.models_dir import ensure_tiny_model

    cli = _main_cli()
    cli._prepare()
    settings = cli._settings()
    project_id = cli._load_project(project).id if project else None
    path, built = ensure_tiny_model(settings.model_dir, project_id=project_id, force=force)
    typer.echo(f"tiny model {'built' if built else 'already present'} at {path}; use base model 'tiny'")


def register(app: typer.Typer) -> None:
    app.command()(finetune)
    app.command()(evaluate)
    app.command()(suggest)
    app.command()(jobs)
    app.command("cancel-job")(cancel_job)
    app.command()(worker)
    app.command("tiny-model")(tiny_model)
