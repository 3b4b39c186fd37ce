"""The sftdesk command line: run the service, manage users, import and export."""

import importlib.util
import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="sftdesk: build reviewed SFT datasets.")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def _settings():
    from pydantic import ValidationError

    from app.config import get_settings

    try:
        return get_settings()
    except ValidationError as error:
        _fail("; ".join(str(e["msg"]) for e in error.errors()))


def _prepare() -> None:
    """Check the settings, create the data directory and migrate the database."""
    from app.logging import configure_logging
    from app.migrate import upgrade_to_head

    settings = _settings()
    configure_logging()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_to_head()


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema to the latest migration."""
    _prepare()
    typer.echo("database is up to date")


@app.command("create-user")
def create_user(
    username: str,
    role: Annotated[str, typer.Option(help="admin, reviewer or annotator")] = "annotator",
    password: Annotated[str | None, typer.Option(help="password; default: generate and print one")] = None,
    display_name: Annotated[str | None, typer.Option(help="name shown in the UI")] = None,
    locale: Annotated[str | None, typer.Option(help="UI language: en or zh-CN; default: follow the browser")] = None,
) -> None:
    """Create a user account."""
    from app.auth import service
    from app.db import unit_of_work
    from app.errors import DomainError

    _prepare()
    generated = password is None
    password = password or secrets.token_urlsafe(12)
    try:
        with unit_of_work() as db:
            service.create_user(
                db, username=username, password=password, role=role, display_name=display_name, locale=locale,
            )
    except DomainError as error:
        _fail(error.message)
    typer.echo(f"created {role} {username!r}" + (f" with password: {password}" if generated else ""))


def _load_project(slug: str):
    from sqlalchemy import select

    from app.db import unit_of_work
    from app.projects.models import Project

    with unit_of_work(write=False) as db:
        project = db.scalar(select(Project).where(Project.slug == slug))
        if project is None:
            _fail(f"project {slug!r} not found: create it in the UI or with the REST API first")
        db.expunge(project)
    return project


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="JSON, JSONL, CSV or text file; .gz is decompressed")],
    project: Annotated[str, typer.Option("--project", "-p", help="project slug")],
    shape: Annotated[str | None, typer.Option(help="force a shape: alpaca, sharegpt, messages, prompt_completion, preference, text, csv")] = None,
    file_format: Annotated[str | None, typer.Option("--format", help="json, jsonl, csv or text; default: detect")] = None,
    encoding: Annotated[str | None, typer.Option(help="encoding when not UTF-8 or UTF-16 with BOM, e.g. gbk")] = None,
    column: Annotated[list[str] | None, typer.Option("--map", help="CSV column for a field, e.g. --map prompt=question")] = None,
) -> None:
    """Import a file into a project, then print the counts and every rejected row."""
    from app.errors import DomainError
    from app.items.api import parse_csv_mapping
    from app.items.importing import ImportOptions
    from app.items.service import import_file

    _prepare()
    if not file.is_file():
        _fail(f"file {str(file)!r} not found")
    settings = _settings()
    target = _load_project(project)
    try:
        options = ImportOptions(
            shape=shape, file_format=file_format, encoding=encoding,
            csv_mapping=parse_csv_mapping(",".join(column or [])), max_text_chars=settings.max_text_chars,
            filename=file.name,
        )
        with file.open("rb") as stream:
            summary = import_file(target, stream, options, user_id=None, batch_rows=settings.import_batch_rows)
    except DomainError as error:
        _fail(error.message)
    typer.echo(
        f"import {summary.batch_id}: {summary.created} created, {summary.duplicates} duplicates skipped, "
        f"{summary.rejected} rejected"
    )
    if summary.rejected:
        _print_all_errors(target, summary.batch_id)


def _print_all_errors(project, batch_id: int) -> None:
    from sqlalchemy import select

    from app.db import unit_of_work
    from app.items.models import ImportRowError

    with unit_of_work(write=False) as db:
        for error in db.scalars(
            select(ImportRowError).where(ImportRowError.batch_id == batch_id).order_by(ImportRowError.record)
        ).yield_per(1000):
            typer.echo(f"  record {error.record}: {error.reason}")


@app.command()
def export(
    project: Annotated[str, typer.Option("--project", "-p", help="project slug")],
    include_unreviewed: Annotated[bool, typer.Option(help="take items not yet accepted, with their imported responses")] = False,
    formats: Annotated[str, typer.Option(help="comma-separated export formats")] = "messages,prompt_completion,alpaca,sharegpt,preference",
    validation_fraction: Annotated[float, typer.Option(help="share of prompts in the validation split, 0 to 0.9")] = 0.1,
    seed: Annotated[int, typer.Option(help="seed of the train/validation split")] = 0,
) -> None:
    """Freeze a new snapshot of a project and print its files."""
    from app.errors import DomainError
    from app.snapshots.service import SnapshotOptions, create_snapshot, snapshot_directory

    _prepare()
    settings = _settings()
    target = _load_project(project)
    options = SnapshotOptions(
        formats=tuple(f.strip() for f in formats.split(",") if f.strip()), include_unreviewed=include_unreviewed,
        validation_fraction=validation_fraction, seed=seed,
    )
    try:
        snapshot = create_snapshot(target, options, user_id=None, snapshot_root=settings.snapshot_dir)
    except DomainError as error:
        _fail(error.message)
    directory = snapshot_directory(settings.snapshot_dir, target, snapshot)
    typer.echo(f"snapshot {snapshot.number}: {json.dumps(snapshot.row_counts, ensure_ascii=False)}")
    for name, info in snapshot.files.items():
        typer.echo(f"  {directory / name}  rows={info['rows']}  sha256={info['sha256']}")


@app.command()
def demo() -> None:
    """Create the admin account and the demo project if they do not exist."""
    from app.demo import DEMO_ADMIN, ensure_demo

    _prepare()
    password = ensure_demo()
    if password:
        typer.echo(f"admin account: {DEMO_ADMIN} / {password}")
    else:
        typer.echo(f"admin account {DEMO_ADMIN!r} already exists; its password is unchanged")


def _worker_available() -> bool:
    return importlib.util.find_spec("app.jobs.worker") is not None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    """Start the web server (no job worker)."""
    import uvicorn

    _prepare()
    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, workers=workers, log_level="info")


@app.command()
def run(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    with_worker: Annotated[bool, typer.Option(help="start a job worker beside the server")] = True,
) -> None:
    """Migrate, create the demo project, then start the server and a worker."""
    import uvicorn

    from app.demo import DEMO_ADMIN, ensure_demo

    _prepare()
    settings = _settings()
    password = ensure_demo()
    if password:
        typer.echo(f"\n  admin account: {DEMO_ADMIN} / {password}\n  (shown once; create more users with 'sftdesk create-user')\n")
    typer.echo(f"  data directory: {settings.data_dir.resolve()}\n  open http://{host}:{port}/\n")

    # uvicorn re-raises SIGTERM after its graceful shutdown; turning it into SystemExit lets the
    # finally block below stop the worker instead of leaving it running.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    worker = None
    if with_worker and _worker_available():
        worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=os.environ.copy())
    try:
        uvicorn.run("app.main:create_app", factory=True, host=host, port=port, log_level="info")
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)


from app.jobs.cli import register as register_job_commands  # noqa: E402 - needs `app` defined above

register_job_commands(app)


def _exit_on_signal(signum, _frame) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
