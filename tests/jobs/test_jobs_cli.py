"""The job commands of the sftdesk CLI: queue, list and cancel jobs."""

import pytest
from typer.testing import CliRunner

from app.cli import app as cli_app


@pytest.fixture
def runner(settings, monkeypatch) -> CliRunner:
    # CliRunner closes its stand-in stderr after each call, and structlog caches loggers bound to
    # the stream that configure_logging saw, so the commands keep this process's logging setup.
    monkeypatch.setattr("app.logging.configure_logging", lambda *args, **kwargs: None)
    return CliRunner()


@pytest.fixture
def snapshot(freeze_snapshot, project) -> int:
    return freeze_snapshot(project)


def test_finetune_command_queues_job(runner, project, snapshot, load_job) -> None:
    result = runner.invoke(cli_app, [
        "finetune", "--project", project, "--snapshot", str(snapshot), "--max-steps", "3",
        "--set", "lora_r=8", "--set", "lora_target_modules=[\"q_proj\", \"v_proj\"]",
    ])

    assert result.exit_code == 0, result.output
    job_id = int(result.output.split("finetune job ")[1].split()[0])
    stored = load_job(job_id)
    assert stored.params["max_steps"] == 3
    assert stored.params["lora_r"] == 8
    assert stored.params["lora_target_modules"] == ["q_proj", "v_proj"]
    assert stored.params["base_model"] == "tiny"


def test_finetune_command_reports_invalid_config(runner, project, snapshot) -> None:
    result = runner.invoke(cli_app, [
        "finetune", "--project", project, "--snapshot", str(snapshot), "--learning-rate", "3",
    ])

    assert result.exit_code == 2
    assert "learning_rate: must be greater than 0.0 and at most 1.0" in result.output


def test_suggest_command_needs_one_model(runner, project) -> None:
    both = runner.invoke(cli_app, ["suggest", "--project", project, "--run", "1", "--model", "tiny"])
    neither = runner.invoke(cli_app, ["suggest", "--project", project])

    assert both.exit_code == 2
    assert neither.exit_code == 2
    assert "exactly one of --run, --model or --endpoint-model" in neither.output


def test_jobs_command_lists_and_paginates(runner, project, add_job) -> None:
    for _ in range(3):
        add_job()
    failed = add_job(status="failed", error="snapshot files missing")

    result = runner.invoke(cli_app, ["jobs", "--project", project, "--page-size", "2"])
    failed_only = runner.invoke(cli_app, ["jobs", "--project", project, "--status", "failed"])

    assert result.exit_code == 0, result.output
    assert "page 1 of 2, 4 jobs in all" in result.output
    assert f"{failed:>6}  finetune  failed" in failed_only.output
    assert "snapshot files missing" in failed_only.output


def test_cancel_job_command(runner, project, add_job, load_job) -> None:
    job_id = add_job()

    result = runner.invoke(cli_app, ["cancel-job", str(job_id), "--project", project])
    again = runner.invoke(cli_app, ["cancel-job", str(job_id), "--project", project])

    assert result.exit_code == 0, result.output
    assert f"job {job_id}: cancelled" in result.output
    assert load_job(job_id).status == "cancelled"
    assert again.exit_code == 2
    assert "already ended" in again.output
