"""Runs and jobs pages: forms with CSRF, live progress through htmx polling, charts, no inline styles."""

import re

import pytest
from support import csrf_of, login


@pytest.fixture
def browser(client, admin_api, project):
    """The test client logged in as the admin through the login form."""
    login(client, "admin")
    return client


@pytest.fixture
def snapshot(freeze_snapshot, project) -> int:
    return freeze_snapshot(project)


def _assert_no_inline_style(html: str) -> None:
    assert not re.search(r"\sstyle\s*=", html)
    assert "<style" not in html
    assert "<script>" not in html


def test_runs_page_offers_start_forms(browser, project, snapshot) -> None:
    page = browser.get(f"/projects/{project}/runs")

    assert page.status_code == 200
    assert 'name="kind" value="finetune"' in page.text
    assert 'name="kind" value="suggest"' in page.text
    assert f'<option value="{snapshot}">' in page.text
    assert csrf_of(page.text)
    assert f'href="/projects/{project}/runs"' in page.text
    assert f'href="/projects/{project}/jobs"' in page.text
    _assert_no_inline_style(page.text)


def test_start_form_creates_job(browser, project, snapshot, load_job) -> None:
    page = browser.get(f"/projects/{project}/runs")

    response = browser.post(f"/projects/{project}/jobs", data={
        "csrf_token": csrf_of(page.text), "kind": "finetune", "snapshot": str(snapshot), "base_model": "tiny",
        "max_steps": "3", "learning_rate": "", "max_length": "128",
    }, follow_redirects=False)

    assert response.status_code == 303
    job_id = int(response.headers["location"].rsplit("/", 1)[1])
    stored = load_job(job_id)
    assert stored.kind == "finetune"
    assert stored.params["max_steps"] == 3
    assert stored.params["max_length"] == 128
    assert stored.params["learning_rate"] == 0.0002


def test_htmx_start_form_redirects_with_header(browser, project, snapshot) -> None:
    page = browser.get(f"/projects/{project}/runs")

    response = browser.post(f"/projects/{project}/jobs", data={
        "kind": "suggest", "source": "model", "model": "tiny", "run_id": "", "limit": "5",
    }, headers={"HX-Request": "true", "X-CSRF-Token": csrf_of(page.text)}, follow_redirects=False)

    assert response.status_code == 204
    assert re.fullmatch(rf"/projects/{project}/jobs/\d+", response.headers["HX-Redirect"])


def test_start_form_error_shown_in_messages(browser, project, snapshot) -> None:
    page = browser.get(f"/projects/{project}/runs")

    response = browser.post(f"/projects/{project}/jobs", data={
        "kind": "finetune", "snapshot": str(snapshot), "base_model": "tiny", "learning_rate": "7",
    }, headers={"HX-Request": "true", "X-CSRF-Token": csrf_of(page.text)})

    assert response.status_code == 422
    assert response.headers["HX-Retarget"] == "#messages"
    assert "learning_rate" in response.text


def test_start_form_needs_csrf(browser, project, snapshot) -> None:
    response = browser.post(f"/projects/{project}/jobs", data={
        "kind": "finetune", "snapshot": str(snapshot), "base_model": "tiny",
    }, follow_redirects=False)

    assert response.status_code == 403


def test_running_job_partial_polls(browser, project, add_job) -> None:
    job_id = add_job(status="running", attempts=1, progress={
        "phase": "training", "step": 4, "total_steps": 10, "loss": 2.5, "eta_seconds": 75,
    }, log="step 4/10 loss 2.5000\n")

    partial = browser.get(f"/projects/{project}/jobs/{job_id}", headers={"HX-Request": "true"})

    assert partial.status_code == 200
    assert 'hx-trigger="every 2s"' in partial.text
    assert '<progress value="4" max="10">' in partial.text
    assert "0:01:15" in partial.text
    assert "2.5000" in partial.text
    assert "step 4/10 loss 2.5000" in partial.text
    assert "<html" not in partial.text
    assert "HX-Request" in partial.headers["Vary"]
    _assert_no_inline_style(partial.text)


def test_finished_job_partial_stops_polling(browser, project, add_job) -> None:
    job_id = add_job(status="succeeded", attempts=1, result={"run_id": 12})

    partial = browser.get(f"/projects/{project}/jobs/{job_id}", headers={"HX-Request": "true"})
    page = browser.get(f"/projects/{project}/jobs/{job_id}")

    assert "hx-trigger" not in partial.text
    assert f"/projects/{project}/runs/12" in partial.text
    assert "<html" in page.text
    assert 'id="job-status"' in page.text


def test_job_page_cancel_button(browser, project, add_job, load_job) -> None:
    job_id = add_job()
    page = browser.get(f"/projects/{project}/jobs/{job_id}")

    response = browser.post(
        f"/projects/{project}/jobs/{job_id}/cancel", headers={"HX-Request": "true", "X-CSRF-Token": csrf_of(page.text)},
    )

    assert f'action="/projects/{project}/jobs/{job_id}/cancel"' in page.text
    assert response.status_code == 200
    assert 'id="job-status"' in response.text
    assert load_job(job_id).status == "cancelled"


def test_jobs_list_polls_while_active(browser, project, add_job) -> None:
    add_job(status="succeeded")
    active = browser.get(f"/projects/{project}/jobs")
    add_job()
    polling = browser.get(f"/projects/{project}/jobs")

    assert "hx-trigger" not in active.text
    assert 'hx-trigger="every 2s"' in polling.text
    assert "2 in all" in polling.text


def test_runs_page_compares_with_base(browser, project, snapshot, add_run, snapshot_id_of) -> None:
    snapshot_id = snapshot_id_of(snapshot)
    finetune = add_run("finetune", snapshot_id=snapshot_id, adapter_path="/tmp/a",
                       metrics={"train_loss": 2.0, "global_step": 30})
    base = add_run("evaluate", snapshot_id=snapshot_id, metrics={
        "validation_loss": 3.0, "perplexity": 20.0, "rouge_l": 0.1, "bleu": 0.02, "chrf": 0.15})
    add_run("evaluate", snapshot_id=snapshot_id, parent_run_id=finetune, adapter_path="/tmp/a", report={"base_run_id": base},
            metrics={"validation_loss": 2.5, "perplexity": 12.2, "rouge_l": 0.2, "bleu": 0.01, "chrf": 0.25})

    page = browser.get(f"/projects/{project}/runs")

    assert page.status_code == 200
    assert f"/projects/{project}/runs/{finetune}" in page.text
    assert "-0.5 ▼" in page.text
    assert "+0.1 ▲" in page.text
    assert "-0.01 ▼" in page.text  # BLEU fell, which is worse
    assert "no change" not in page.text
    assert page.text.count("<svg viewBox") == 5
    assert "<polyline" not in page.text  # one snapshot gives one point per series
    assert "<circle" in page.text
    _assert_no_inline_style(page.text)


def test_runs_chart_draws_lines_across_snapshots(browser, project, freeze_snapshot, add_run, snapshot_id_of) -> None:
    for rows_taken in (20, 40):
        number = freeze_snapshot(project)
        snapshot_id = snapshot_id_of(number)
        finetune = add_run("finetune", snapshot_id=snapshot_id, adapter_path="/tmp/a")
        add_run("evaluate", snapshot_id=snapshot_id, metrics={"validation_loss": 3.0, "rouge_l": 0.1})
        add_run("evaluate", snapshot_id=snapshot_id, parent_run_id=finetune, adapter_path="/tmp/a",
                metrics={"validation_loss": 3.0 - rows_taken / 100, "rouge_l": 0.1 + rows_taken / 100})

    page = browser.get(f"/projects/{project}/runs")

    assert page.text.count("<polyline") == 4
    assert 'stroke-dasharray="5 4"' in page.text
    _assert_no_inline_style(page.text)


def test_run_detail_page_shows_samples(browser, project, add_run) -> None:
    run_id = add_run("evaluate", metrics={"validation_loss": 1.0}, report={"samples": [
        {"prompt": [], "reference": "<b>参考答案</b>", "prediction": "模型的回答"}]})

    page = browser.get(f"/projects/{project}/runs/{run_id}")

    assert page.status_code == 200
    assert "&lt;b&gt;参考答案&lt;/b&gt;" in page.text
    assert "模型的回答" in page.text


def test_annotator_sees_no_start_forms(client, admin_api, user_factory, project, snapshot) -> None:
    user_factory("annie")
    admin_api.put(f"/api/v1/projects/{project}/members/annie", json={"role": "annotator"})
    login(client, "annie")

    page = client.get(f"/projects/{project}/runs")
    response = client.post(f"/projects/{project}/jobs", data={
        "csrf_token": csrf_of(page.text), "kind": "finetune", "snapshot": str(snapshot), "base_model": "tiny",
    })

    assert page.status_code == 200
    assert 'name="kind"' not in page.text
    assert response.status_code == 403


def test_pages_translated_to_chinese(browser, project, add_job) -> None:
    job_id = add_job(status="running", progress={"phase": "training", "step": 1, "total_steps": 2})

    runs = browser.get(f"/projects/{project}/runs", headers={"Accept-Language": "zh-CN"})
    job = browser.get(f"/projects/{project}/jobs/{job_id}", headers={"Accept-Language": "zh-CN"})

    assert "运行" in runs.text
    assert "训练" in job.text


def test_unchanged_metric_says_no_change(browser, project, snapshot, add_run, snapshot_id_of) -> None:
    snapshot_id = snapshot_id_of(snapshot)
    finetune = add_run("finetune", snapshot_id=snapshot_id, adapter_path="/tmp/a")
    base = add_run("evaluate", snapshot_id=snapshot_id, metrics={"rouge_l": 0.0})
    add_run("evaluate", snapshot_id=snapshot_id, parent_run_id=finetune, adapter_path="/tmp/a",
            report={"base_run_id": base}, metrics={"rouge_l": 0.0})

    page = browser.get(f"/projects/{project}/runs")

    assert "±0 (no change)" in page.text
    assert "(worse)" not in page.text


@pytest.mark.parametrize("value, text", [
    (0, "0"), (7.5678, "7.57"), (2030.4, "2,030"), (-0.0376, "-0.0376"), (2.65e-24, "<0.0001"), (-3e-9, ">-0.0001"),
])
def test_metric_value_format(value, text) -> None:
    from app.runs.chart import format_value

    assert format_value(value) == text
