"""The whole loop on the CPU with the tiny model: import, snapshot, fine-tune, evaluate, suggest.

Also a real worker process killed mid-training whose job another worker finishes from the last
checkpoint, and a cancelled fine-tune. Steps are kept few, because these tests train for real.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from app.db import unit_of_work
from app.items.models import Candidate, Item
from app.jobs.worker import Worker
from app.runs.models import Run

pytestmark = pytest.mark.training

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
# Few steps on short sequences: these tests check the plumbing, not what the model learns.
FINETUNE_PARAMS = {
    "base_model": "tiny", "max_steps": 4, "learning_rate": 0.01, "max_length": 128,
    "per_device_train_batch_size": 4, "logging_steps": 1, "save_steps": 2,
}
EVALUATE_PARAMS = {"max_new_tokens": 8, "max_examples": 8, "batch_size": 8, "max_length": 128, "sample_count": 2}


def _run_worker(settings) -> int:
    return Worker(settings=settings, tick_s=0.2).run(exit_when_idle=True)


def _import_real_rows(api, project: str, shared_data: Path) -> None:
    for relative_path in ("zh/llamafactory_alpaca_zh_demo.json", "en/llamafactory_alpaca_en_demo.json"):
        records = json.loads((shared_data / relative_path).read_text(encoding="utf-8"))[:100]
        response = api.post(
            f"/api/v1/projects/{project}/items", content=json.dumps(records, ensure_ascii=False).encode(),
            headers={"Content-Type": "application/json"}, params={"shape": "alpaca"},
        )
        assert response.status_code == 201, response.text
        assert response.json()["created"] + response.json()["duplicates"] == 100


def _job(api, project: str, job_id: int) -> dict:
    response = api.get(f"/api/v1/projects/{project}/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()


def test_full_loop_on_real_data(admin_api, project, settings, shared_data) -> None:
    _import_real_rows(admin_api, project, shared_data)
    snapshot = admin_api.post(f"/api/v1/projects/{project}/snapshots", json={
        "include_unreviewed": True, "validation_fraction": 0.1, "formats": ["messages"],
    })
    assert snapshot.status_code == 201, snapshot.text
    number = snapshot.json()["number"]
    assert snapshot.json()["row_counts"]["items"] >= 190

    finetune = admin_api.post(f"/api/v1/projects/{project}/jobs", json={
        "kind": "finetune", "snapshot": number, "params": FINETUNE_PARAMS,
    })
    assert finetune.status_code == 201, finetune.text
    assert _run_worker(settings) == 1
    finetune_job = _job(admin_api, project, finetune.json()["id"])
    assert finetune_job["status"] == "succeeded", finetune_job["log"]
    run_id = finetune_job["result"]["run_id"]
    finetune_run = admin_api.get(f"/api/v1/projects/{project}/runs/{run_id}").json()
    assert (settings.model_dir / "tiny" / "config.json").is_file()
    assert finetune_run["kind"] == "finetune"
    assert finetune_run["base_model"] == "tiny"
    assert Path(finetune_run["adapter_path"]).is_relative_to(settings.model_dir)
    assert (Path(finetune_run["adapter_path"]) / "adapter_config.json").is_file()
    assert finetune_run["metrics"]["global_step"] == 4
    assert finetune_run["report"]["data_report"]["rows"] == snapshot.json()["row_counts"]["train"]
    assert "step 4/4" in finetune_job["log"]

    evaluate = admin_api.post(f"/api/v1/projects/{project}/jobs", json={
        "kind": "evaluate", "params": {"run_id": run_id, **EVALUATE_PARAMS},
    })
    assert evaluate.status_code == 201, evaluate.text
    assert evaluate.json()["snapshot"] == number
    assert _run_worker(settings) == 1
    evaluate_job = _job(admin_api, project, evaluate.json()["id"])
    assert evaluate_job["status"] == "succeeded", evaluate_job["log"]
    evaluations = admin_api.get(f"/api/v1/projects/{project}/runs", params={"kind": "evaluate"}).json()["items"]
    tuned = next(run for run in evaluations if run["parent_run_id"] == run_id)
    base = next(run for run in evaluations if run["parent_run_id"] is None)
    assert evaluations.__len__() == 2
    assert base["adapter_path"] is None
    assert tuned["base_run_id"] == base["id"]
    for metric in ("validation_loss", "perplexity", "rouge_l", "bleu", "chrf"):
        assert isinstance(tuned["metrics"][metric], float), metric
        assert isinstance(base["metrics"][metric], float), metric
        assert metric in tuned["comparison"]
    assert tuned["metrics"]["validation_loss"] != base["metrics"]["validation_loss"]

    suggest = admin_api.post(f"/api/v1/projects/{project}/jobs", json={
        "kind": "suggest", "params": {"source": "run", "run_id": run_id, "limit": 10, "temperature": 1.0,
                                      "max_new_tokens": 8},
    })
    assert suggest.status_code == 201, suggest.text
    assert _run_worker(settings) == 1
    suggest_job = _job(admin_api, project, suggest.json()["id"])
    assert suggest_job["status"] == "succeeded", suggest_job["log"]
    assert suggest_job["result"]["drafted"] == 10
    with unit_of_work(write=False) as db:
        drafts = db.execute(
            select(Candidate.run_id, Candidate.model_name, Candidate.text, Item.status)
            .join(Item, Item.id == Candidate.item_id).where(Candidate.source == "model")
        ).all()
    assert len(drafts) == 10
    assert {draft.run_id for draft in drafts} == {run_id}
    assert {draft.model_name for draft in drafts} == {"tiny"}
    assert all(draft.text.strip() for draft in drafts)
    assert {draft.status for draft in drafts} == {"new"}

    page = admin_api.get(f"/projects/{project}/runs")
    assert page.status_code == 200
    assert f"/projects/{project}/runs/{run_id}" in page.text
    assert page.text.count("<svg viewBox") == 5


def test_cancel_stops_real_finetune(admin_api, project, settings, freeze_snapshot) -> None:
    number = freeze_snapshot(project)
    created = admin_api.post(f"/api/v1/projects/{project}/jobs", json={
        "kind": "finetune", "snapshot": number,
        "params": {**FINETUNE_PARAMS, "max_steps": 500, "save_steps": 1000, "max_length": 64},
    })
    job_id = created.json()["id"]
    thread = threading.Thread(target=_run_worker, args=(settings,))
    thread.start()
    deadline = time.monotonic() + 120
    while (_job(admin_api, project, job_id)["progress"].get("step") or 0) < 1:
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.2)

    cancelled_at = time.monotonic()
    assert admin_api.post(f"/api/v1/projects/{project}/jobs/{job_id}/cancel").status_code == 200
    while _job(admin_api, project, job_id)["status"] != "cancelled":
        assert time.monotonic() - cancelled_at < 30, "the job did not stop after cancellation"
        time.sleep(0.2)
    stop_seconds = time.monotonic() - cancelled_at
    thread.join(timeout=60)

    job = _job(admin_api, project, job_id)
    assert stop_seconds < 15
    assert job["progress"]["step"] < 500
    assert "checkpoint saved" in job["log"]
    with unit_of_work(write=False) as db:
        assert db.scalar(select(Run.id)) is None


def _start_worker(settings, log_path: Path, *extra: str) -> subprocess.Popen:
    env = {
        **os.environ, "SFTDESK_DATABASE_URL": settings.resolved_database_url, "SFTDESK_DATA_DIR": str(settings.data_dir),
        "SFTDESK_ENVIRONMENT": "test", "SFTDESK_JOB_LEASE_S": "5", "SFTDESK_WORKER_POLL_S": "0.5",
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", *extra], cwd=REPOSITORY_ROOT, env=env,
            stdout=log_file, stderr=subprocess.STDOUT,
        )


def test_killed_worker_job_resumes_from_checkpoint(admin_api, project, settings, freeze_snapshot, tmp_path) -> None:
    number = freeze_snapshot(project)
    created = admin_api.post(f"/api/v1/projects/{project}/jobs", json={
        "kind": "finetune", "snapshot": number,
        "params": {**FINETUNE_PARAMS, "max_steps": 24, "save_steps": 2, "max_length": 64,
                   "per_device_train_batch_size": 2},
    })
    job_id = created.json()["id"]
    log_path = tmp_path / "workers.log"

    first = _start_worker(settings, log_path)
    try:
        deadline = time.monotonic() + 180
        while not list(settings.model_dir.glob("runs/*/job-*/checkpoints/checkpoint-*/trainer_state.json")):
            assert first.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, "no checkpoint was written"
            time.sleep(0.1)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    killed = _job(admin_api, project, job_id)
    assert killed["status"] == "running"
    assert killed["attempts"] == 1

    second = _start_worker(settings, log_path, "--max-jobs", "1", "--retry-base-s", "0")
    try:
        second.wait(timeout=300)
    finally:
        if second.poll() is None:
            second.kill()

    job = _job(admin_api, project, job_id)
    assert second.returncode == 0, log_path.read_text(errors="replace")
    assert job["status"] == "succeeded", job["log"]
    assert job["attempts"] == 2
    assert "lease of" in job["log"]
    assert "expired" in job["log"]
    run = admin_api.get(f"/api/v1/projects/{project}/runs/{job['result']['run_id']}").json()
    assert run["report"]["resumed_from"] is not None
    assert "checkpoint-" in run["report"]["resumed_from"]
    assert "resumed from" in job["log"]
    assert run["metrics"]["global_step"] == 24


def test_sigterm_returns_job_to_queue(admin_api, project, settings, freeze_snapshot, tmp_path) -> None:
    number = freeze_snapshot(project)
    created = admin_api.post(f"/api/v1/projects/{project}/jobs", json={
        "kind": "finetune", "snapshot": number,
        "params": {**FINETUNE_PARAMS, "max_steps": 500, "save_steps": 1000, "max_length": 64},
    })
    job_id = created.json()["id"]
    log_path = tmp_path / "worker.log"

    worker = _start_worker(settings, log_path)
    try:
        deadline = time.monotonic() + 180
        while (_job(admin_api, project, job_id)["progress"].get("step") or 0) < 1:
            assert worker.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.2)
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()

    job = _job(admin_api, project, job_id)
    worker_log = log_path.read_text(errors="replace")
    assert worker.returncode == 0, worker_log
    assert job["status"] == "queued"
    assert job["attempts"] == 0
    assert "job returned to the queue" in job["log"]
    assert list(settings.model_dir.glob("runs/*/job-*/checkpoints/checkpoint-*/trainer_state.json"))
    assert "worker shutdown requested" in worker_log
    assert f"job_id={job_id}" in worker_log


def test_tiny_model_command_builds_model(settings, project, monkeypatch) -> None:
    from typer.testing import CliRunner

    from app.cli import app as cli_app

    monkeypatch.setattr("app.logging.configure_logging", lambda *args, **kwargs: None)
    runner = CliRunner()

    built = runner.invoke(cli_app, ["tiny-model", "--project", project])
    again = runner.invoke(cli_app, ["tiny-model"])

    assert built.exit_code == 0, built.output
    assert "tiny model built" in built.output
    assert (settings.model_dir / "tiny" / "tokenizer.json").is_file()
    assert "already present" in again.output
