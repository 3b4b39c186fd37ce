"""Fixtures for the job queue, worker, runs and their pages.

Helpers reach the tests as fixtures, so the tests work with any pytest import mode.
"""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

# Short bilingual conversations for snapshots that tests freeze through the REST API.
ALPACA_ROWS = [
    {"instruction": f"Question {number}: what is {number} plus {number}?", "input": "",
     "output": f"{number} plus {number} is {number * 2}."}
    for number in range(1, 25)
] + [
    {"instruction": f"第{number}题：{number}加{number}等于几？", "input": "", "output": f"{number}加{number}等于{number * 2}。"}
    for number in range(1, 25)
]


@pytest.fixture
def project_id(project) -> int:
    from sqlalchemy import select

    from app.db import unit_of_work
    from app.projects.models import Project

    with unit_of_work(write=False) as db:
        return db.scalar(select(Project.id).where(Project.slug == project))


@pytest.fixture
def add_job(project_id) -> Callable[..., int]:
    """Insert a queued job directly, without parameter checks; return its id."""

    def add(kind: str = "finetune", *, params: dict[str, Any] | None = None, target_project_id: int | None = None,
            max_attempts: int = 3, **values: Any) -> int:
        from app.db import unit_of_work
        from app.jobs.models import Job

        with unit_of_work() as db:
            job = Job(kind=kind, project_id=target_project_id or project_id, params=params or {},
                      max_attempts=max_attempts, **values)
            db.add(job)
            db.flush()
            return job.id

    return add


@pytest.fixture
def load_job() -> Callable[[int], Any]:
    def load(job_id: int):
        from app.db import unit_of_work
        from app.jobs.models import Job

        with unit_of_work(write=False) as db:
            job = db.get(Job, job_id)
            db.expunge(job)
            return job

    return load


@pytest.fixture
def freeze_snapshot(admin_api) -> Callable[..., int]:
    """Import rows through the REST API, freeze a snapshot with unreviewed items, return its number."""

    def freeze(project: str, rows: list[dict] | None = None, *, validation_fraction: float = 0.2) -> int:
        from support import import_jsonl

        response = import_jsonl(admin_api, project, rows if rows is not None else ALPACA_ROWS, shape="alpaca")
        assert response.status_code == 201, response.text
        response = admin_api.post(
            f"/api/v1/projects/{project}/snapshots",
            json={"include_unreviewed": True, "validation_fraction": validation_fraction, "formats": ["messages"]},
        )
        assert response.status_code == 201, response.text
        return response.json()["number"]

    return freeze


@pytest.fixture
def add_run(project_id) -> Callable[..., int]:
    """Insert a run row directly; return its id."""

    def add(kind: str = "finetune", **values: Any) -> int:
        from app.db import unit_of_work
        from app.runs.models import Run

        values.setdefault("base_model", "tiny")
        values.setdefault("project_id", project_id)
        with unit_of_work() as db:
            run = Run(kind=kind, **values)
            db.add(run)
            db.flush()
            return run.id

    return add


@pytest.fixture
def snapshot_id_of(project_id) -> Callable[[int], int]:
    def find(number: int) -> int:
        from sqlalchemy import select

        from app.db import unit_of_work
        from app.snapshots.models import Snapshot

        with unit_of_work(write=False) as db:
            return db.scalar(select(Snapshot.id).where(Snapshot.project_id == project_id, Snapshot.number == number))

    return find


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}; these tests need the shared data directory beside the repository")
    return SHARED_DATA
