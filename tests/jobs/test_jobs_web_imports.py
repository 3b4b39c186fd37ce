"""The web process validates and shows jobs without importing the ML stack.

The check runs in a fresh interpreter, because other tests in this process may have imported torch.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

HEAVY_MODULES = ("torch", "transformers", "trl", "peft", "datasets", "accelerate")
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import json, os, sys
    from fastapi.testclient import TestClient
    from app.main import create_app

    project, token = os.environ["CHECK_PROJECT"], os.environ["CHECK_TOKEN"]
    snapshot, run_id = int(os.environ["CHECK_SNAPSHOT"]), int(os.environ["CHECK_RUN"])
    headers = {"Authorization": f"Bearer {token}"}
    jobs = f"/api/v1/projects/{project}/jobs"
    statuses = {}
    with TestClient(create_app(), base_url="http://127.0.0.1") as client:
        def call(label, method, url, **kwargs):
            response = client.request(method, url, headers=headers, **kwargs)
            statuses[label] = response.status_code
            return response
        created = call("create finetune", "POST", jobs,
                       json={"kind": "finetune", "snapshot": snapshot, "params": {"base_model": "tiny", "max_steps": 2}})
        call("invalid finetune", "POST", jobs,
             json={"kind": "finetune", "snapshot": snapshot, "params": {"base_model": "tiny", "learning_rate": 9}})
        call("create evaluate", "POST", jobs, json={"kind": "evaluate", "params": {"run_id": run_id}})
        call("create suggest", "POST", jobs, json={"kind": "suggest", "params": {"source": "run", "run_id": run_id}})
        job_id = created.json()["id"]
        call("list jobs", "GET", jobs)
        call("job detail", "GET", f"{jobs}/{job_id}")
        call("cancel job", "POST", f"{jobs}/{job_id}/cancel")
        call("list runs", "GET", f"/api/v1/projects/{project}/runs")
        call("run detail", "GET", f"/api/v1/projects/{project}/runs/{run_id}")
        call("runs page", "GET", f"/projects/{project}/runs")
        call("run page", "GET", f"/projects/{project}/runs/{run_id}")
        call("jobs page", "GET", f"/projects/{project}/jobs")
        call("job page", "GET", f"/projects/{project}/jobs/{job_id}")
    heavy = [name for name in HEAVY if name in sys.modules]
    print(json.dumps({"statuses": statuses, "heavy": heavy}))
""")


def test_job_routes_import_no_ml_stack(admin_api, project, settings, freeze_snapshot, add_run, snapshot_id_of) -> None:
    number = freeze_snapshot(project)
    run_id = add_run("finetune", snapshot_id=snapshot_id_of(number), adapter_path="/tmp/adapter")
    env = {
        **os.environ, "SFTDESK_DATABASE_URL": settings.resolved_database_url, "SFTDESK_DATA_DIR": str(settings.data_dir),
        "SFTDESK_ENVIRONMENT": "test", "CHECK_PROJECT": project, "CHECK_TOKEN": admin_api.token,
        "CHECK_SNAPSHOT": str(number), "CHECK_RUN": str(run_id),
    }

    completed = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY_MODULES!r}\n{SCRIPT}"], cwd=REPOSITORY_ROOT, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )

    assert completed.returncode == 0, completed.stderr
    outcome = json.loads(completed.stdout.strip().splitlines()[-1])
    statuses = outcome["statuses"]
    assert statuses.pop("invalid finetune") == 422
    assert statuses.pop("create finetune") == 201
    assert statuses.pop("create evaluate") == 201
    assert statuses.pop("create suggest") == 201
    assert set(statuses.values()) == {200}, statuses
    assert outcome["heavy"] == []
