"""Jobs and runs through the REST API: validation, pagination, cancellation and permissions."""

import pytest

from app.jobs.params import MAX_SUGGEST_LIMIT


@pytest.fixture
def snapshot(freeze_snapshot, project) -> int:
    return freeze_snapshot(project)


def _create(api, project, **body):
    return api.post(f"/api/v1/projects/{project}/jobs", json=body)


def test_create_finetune_job_stores_full_config(admin_api, project, snapshot, load_job) -> None:
    response = _create(admin_api, project, kind="finetune", snapshot=snapshot,
                       params={"base_model": "tiny", "max_steps": 5, "learning_rate": "0.01"})

    body = response.json()
    stored = load_job(body["id"])
    assert response.status_code == 201, response.text
    assert body["status"] == "queued"
    assert body["snapshot"] == snapshot
    assert body["params"]["max_steps"] == 5
    assert body["params"]["learning_rate"] == 0.01
    assert body["params"]["lora_r"] == 16
    assert body["attempts"] == 0
    assert stored.params == body["params"]
    assert stored.max_attempts == 3
    assert "queued" in body["log"]


@pytest.mark.parametrize("params, field", [
    ({"base_model": "tiny", "learning_rate": 5}, "learning_rate"),
    ({"base_model": "tiny", "max_step": 5}, "max_step"),
    ({"max_steps": 5}, "base_model"),
])
def test_invalid_finetune_params_rejected(admin_api, project, snapshot, params, field) -> None:
    response = _create(admin_api, project, kind="finetune", snapshot=snapshot, params=params)

    error = response.json()["error"]
    assert response.status_code == 422
    assert error["code"] == "invalid_input"
    assert field in error["message"]
    assert [problem["field"] for problem in error["problems"]] == [field]


def test_learning_rate_error_names_range(admin_api, project, snapshot) -> None:
    response = _create(admin_api, project, kind="finetune", snapshot=snapshot,
                       params={"base_model": "tiny", "learning_rate": 5})

    assert "at most 1.0" in response.json()["error"]["message"]
    assert "got 5" in response.json()["error"]["message"]


def test_unknown_kind_rejected(admin_api, project, snapshot) -> None:
    response = _create(admin_api, project, kind="distill", snapshot=snapshot)

    assert response.status_code == 422
    assert "invalid job kind 'distill'" in response.json()["error"]["message"]


def test_finetune_needs_snapshot(admin_api, project) -> None:
    response = _create(admin_api, project, kind="finetune", params={"base_model": "tiny"})

    assert response.status_code == 422
    assert "needs a snapshot" in response.json()["error"]["message"]


def test_missing_snapshot_is_404(admin_api, project, snapshot) -> None:
    response = _create(admin_api, project, kind="finetune", snapshot=snapshot + 5, params={"base_model": "tiny"})

    assert response.status_code == 404
    assert f"snapshot {snapshot + 5} not found" in response.json()["error"]["message"]


def test_snapshot_without_validation_rows_rejected(admin_api, project, freeze_snapshot, add_run, snapshot_id_of) -> None:
    number = freeze_snapshot(project, validation_fraction=0.0)
    run_id = add_run("finetune", snapshot_id=snapshot_id_of(number), adapter_path="/tmp/adapter")

    response = _create(admin_api, project, kind="evaluate", snapshot=number, params={"run_id": run_id})

    assert response.status_code == 422
    assert "no validation rows" in response.json()["error"]["message"]


def test_evaluate_defaults_to_run_snapshot(admin_api, project, snapshot, add_run, snapshot_id_of) -> None:
    run_id = add_run("finetune", snapshot_id=snapshot_id_of(snapshot), adapter_path="/tmp/adapter")

    response = _create(admin_api, project, kind="evaluate", params={"run_id": run_id, "max_new_tokens": 16})

    assert response.status_code == 201, response.text
    assert response.json()["snapshot"] == snapshot
    assert response.json()["params"]["run_id"] == run_id
    assert response.json()["params"]["max_new_tokens"] == 16


def test_evaluate_needs_run_or_base_model(admin_api, project, snapshot) -> None:
    response = _create(admin_api, project, kind="evaluate", snapshot=snapshot, params={})

    assert response.status_code == 422
    assert "exactly one of run_id" in response.json()["error"]["message"]


def test_suggest_limit_checked(admin_api, project) -> None:
    response = _create(admin_api, project, kind="suggest",
                       params={"source": "model", "model": "tiny", "limit": MAX_SUGGEST_LIMIT + 1})

    assert response.status_code == 422
    assert f"use 1 to {MAX_SUGGEST_LIMIT}" in response.json()["error"]["message"]


def test_suggest_endpoint_needs_setting(admin_api, project) -> None:
    response = _create(admin_api, project, kind="suggest", params={"source": "endpoint", "model": "qwen"})

    assert response.status_code == 422
    assert "SFTDESK_SUGGEST_ENDPOINT_URL" in response.json()["error"]["message"]


def test_suggest_rejects_base_url_param(admin_api, project) -> None:
    response = _create(admin_api, project, kind="suggest",
                       params={"source": "model", "model": "tiny", "base_url": "http://127.0.0.1:9/v1"})

    assert response.status_code == 422
    assert "unknown suggest parameters ['base_url']" in response.json()["error"]["message"]


def test_suggest_endpoint_uses_configured_url(admin_api, project, monkeypatch) -> None:
    from app.config import get_settings

    monkeypatch.setenv("SFTDESK_SUGGEST_ENDPOINT_URL", "http://127.0.0.1:8001/v1")
    get_settings.cache_clear()

    response = _create(admin_api, project, kind="suggest",
                       params={"source": "endpoint", "model": "qwen", "limit": 3, "temperature": 0.5})

    params = response.json()["params"]
    assert response.status_code == 201, response.text
    assert params["source"] == "endpoint"
    assert params["model"] == "qwen"
    assert params["temperature"] == 0.5
    assert "base_url" not in params


def test_list_jobs_paginates_with_total(admin_api, project, add_job) -> None:
    ids = [add_job() for _ in range(5)]

    first = admin_api.get(f"/api/v1/projects/{project}/jobs", params={"page_size": 2})
    last = admin_api.get(f"/api/v1/projects/{project}/jobs", params={"page_size": 2, "page": 3})

    assert first.status_code == 200
    assert first.json()["total"] == 5
    assert first.json()["pages"] == 3
    assert [job["id"] for job in first.json()["items"]] == ids[::-1][:2]
    assert [job["id"] for job in last.json()["items"]] == ids[:1]
    assert "log" not in first.json()["items"][0]


def test_list_jobs_filters_status(admin_api, project, add_job) -> None:
    add_job()
    done = add_job(status="succeeded")

    response = admin_api.get(f"/api/v1/projects/{project}/jobs", params={"status": "succeeded"})
    invalid = admin_api.get(f"/api/v1/projects/{project}/jobs", params={"status": "done"})

    assert [job["id"] for job in response.json()["items"]] == [done]
    assert response.json()["total"] == 1
    assert invalid.status_code == 422


def test_job_detail_has_progress_and_log(admin_api, project, add_job) -> None:
    job_id = add_job(progress={"phase": "training", "step": 3, "total_steps": 9}, log="line one\n")

    response = admin_api.get(f"/api/v1/projects/{project}/jobs/{job_id}")

    assert response.status_code == 200
    assert response.json()["progress"]["step"] == 3
    assert response.json()["log"] == "line one\n"


def test_cancel_queued_job(admin_api, project, add_job, load_job) -> None:
    job_id = add_job()

    response = admin_api.post(f"/api/v1/projects/{project}/jobs/{job_id}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert load_job(job_id).status == "cancelled"


def test_cancel_finished_job_conflicts(admin_api, project, add_job) -> None:
    job_id = add_job(status="succeeded")

    response = admin_api.post(f"/api/v1/projects/{project}/jobs/{job_id}/cancel")

    assert response.status_code == 409
    assert "already ended" in response.json()["error"]["message"]


def test_annotator_cannot_start_or_cancel(admin_api, user_factory, project, snapshot, add_job) -> None:
    annotator = user_factory("annie")
    admin_api.put(f"/api/v1/projects/{project}/members/annie", json={"role": "annotator"})
    job_id = add_job()

    created = _create(annotator, project, kind="finetune", snapshot=snapshot, params={"base_model": "tiny"})
    cancelled = annotator.post(f"/api/v1/projects/{project}/jobs/{job_id}/cancel")
    listed = annotator.get(f"/api/v1/projects/{project}/jobs")

    assert created.status_code == 403
    assert cancelled.status_code == 403
    assert listed.status_code == 200
    assert listed.json()["total"] == 1


@pytest.fixture
def other_project(admin_api) -> str:
    response = admin_api.post("/api/v1/projects", json={"slug": "other", "name": "Other"})
    assert response.status_code == 201, response.text
    return "other"


def test_other_projects_job_is_404(admin_api, project, other_project, add_job, project_id) -> None:
    job_id = add_job()

    detail = admin_api.get(f"/api/v1/projects/{other_project}/jobs/{job_id}")
    cancel = admin_api.post(f"/api/v1/projects/{other_project}/jobs/{job_id}/cancel")
    page = admin_api.get(f"/projects/{other_project}/jobs/{job_id}")

    assert detail.status_code == 404
    assert cancel.status_code == 404
    assert page.status_code == 404


def test_other_projects_run_is_404(admin_api, project, other_project, add_run, freeze_snapshot) -> None:
    run_id = add_run("finetune", adapter_path="/tmp/adapter")
    number = freeze_snapshot(other_project)

    detail = admin_api.get(f"/api/v1/projects/{other_project}/runs/{run_id}")
    evaluate = _create(admin_api, other_project, kind="evaluate", snapshot=number, params={"run_id": run_id})
    suggest = _create(admin_api, other_project, kind="suggest", params={"source": "run", "run_id": run_id})

    assert detail.status_code == 404
    assert evaluate.status_code == 404
    assert suggest.status_code == 404
    assert admin_api.get(f"/api/v1/projects/{project}/runs/{run_id}").status_code == 200


def test_non_member_sees_404(admin_api, user_factory, project, add_job) -> None:
    outsider = user_factory("olga")
    job_id = add_job()

    assert outsider.get(f"/api/v1/projects/{project}/jobs/{job_id}").status_code == 404
    assert outsider.get(f"/api/v1/projects/{project}/runs").status_code == 404


def test_runs_list_paginates_and_compares(admin_api, project, snapshot, add_run, snapshot_id_of) -> None:
    snapshot_id = snapshot_id_of(snapshot)
    finetune = add_run("finetune", snapshot_id=snapshot_id, adapter_path="/tmp/a", metrics={"train_loss": 2.0})
    base = add_run("evaluate", snapshot_id=snapshot_id, metrics={"validation_loss": 3.0, "rouge_l": 0.1})
    evaluation = add_run("evaluate", snapshot_id=snapshot_id, parent_run_id=finetune, adapter_path="/tmp/a",
                         metrics={"validation_loss": 2.5, "rouge_l": 0.2}, report={"base_run_id": base})

    response = admin_api.get(f"/api/v1/projects/{project}/runs", params={"page_size": 2})
    detail = admin_api.get(f"/api/v1/projects/{project}/runs/{evaluation}").json()
    finetunes = admin_api.get(f"/api/v1/projects/{project}/runs", params={"kind": "finetune"}).json()

    assert response.json()["total"] == 3
    assert [run["id"] for run in response.json()["items"]] == [evaluation, base]
    assert detail["snapshot"] == snapshot
    assert detail["base_run_id"] == base
    assert detail["comparison"]["validation_loss"]["delta"] == -0.5
    assert detail["comparison"]["validation_loss"]["improved"] is True
    assert detail["comparison"]["rouge_l"]["improved"] is True
    assert [run["id"] for run in finetunes["items"]] == [finetune]
