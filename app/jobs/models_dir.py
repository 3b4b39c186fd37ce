"""Model paths under the data directory, and the tiny demo model built there on demand.

A base model reference is a Hugging Face model id, a local directory, or "tiny": the tiny model
that `app.training.tiny_model` builds into `<model_dir>/tiny` without downloading anything. Every
handler resolves references here, so "tiny" loads through the same code path as any model.
"""

import fcntl
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from app.db import unit_of_work
from app.items.models import Candidate, Item
from app.logging import get_logger

log = get_logger(__name__)

TINY_MODEL = "tiny"
TINY_MODEL_DIR = "tiny"
# Maximum number of project texts in the tiny model's tokenizer corpus, because more only slow the build.
TINY_CORPUS_MAX_TEXTS = 20_000

# Always part of the tiny model's tokenizer corpus, so a project with few items still gets merges
# for common English and Chinese text. Written for sftdesk.
BILINGUAL_TEXT = (
    "Thank you for your question. Here is a short answer.",
    "First, read the task carefully. Then write the steps in order.",
    "The result depends on the input data and on the settings you choose.",
    "Please check the numbers again before you send the report.",
    "A good response is correct, clear and as short as it can be.",
    "感谢你的提问，下面是一个简短的回答。",
    "首先仔细阅读题目，然后按顺序写出每一步。",
    "结果取决于输入的数据以及你选择的设置。",
    "发送报告之前，请再检查一遍这些数字。",
    "好的回答应当正确、清楚，并且尽量简短。",
)


def run_output_dir(model_dir: Path, project_slug: str, job_id: int, created_at: datetime) -> Path:
    """Return the directory of one fine-tune job's checkpoints and adapter.

    The job's creation time is part of the name, so a job id that a reset database hands out again
    never resumes another job's checkpoints.
    """
    return model_dir / "runs" / project_slug / f"job-{job_id}-{created_at:%Y%m%dT%H%M%S}"


def tiny_model_path(model_dir: Path) -> Path:
    return model_dir / TINY_MODEL_DIR


def project_corpus(project_id: int | None, limit: int = TINY_CORPUS_MAX_TEXTS) -> list[str]:
    """Return message and candidate texts of a project's items, at most `limit` of them."""
    if project_id is None:
        return []
    texts: list[str] = []
    with unit_of_work(write=False) as db:
        for messages in db.scalars(
            select(Item.messages).where(Item.project_id == project_id).order_by(Item.id).limit(limit)
        ):
            texts.extend(message.get("content") or "" for message in messages)
        remaining = max(limit - len(texts), 0)
        texts.extend(db.scalars(
            select(Candidate.text).join(Item, Item.id == Candidate.item_id)
            .where(Item.project_id == project_id).order_by(Candidate.id).limit(remaining)
        ))
    return [text for text in texts[:limit] if text]


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_tiny_model(model_dir: Path, *, project_id: int | None = None, force: bool = False) -> tuple[Path, bool]:
    """Build the tiny model into `<model_dir>/tiny` unless it is there, and return (path, built).

    A file lock keeps two workers on one machine from building it at the same time, and the model
    is written to a temporary directory first, so a crash never leaves half a model behind.
    """
    target = tiny_model_path(model_dir)
    with _file_lock(model_dir / ".tiny.lock"):
        if (target / "config.json").is_file() and not force:
            return target, False

        from app.training.tiny_model import build_tiny_model

        corpus = [*BILINGUAL_TEXT, *project_corpus(project_id)]
        staging = Path(tempfile.mkdtemp(prefix=".tiny-", dir=model_dir))
        try:
            build_tiny_model(staging, corpus)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    log.info("tiny model built", path=str(target), project_id=project_id, corpus_texts=len(corpus))
    return target, True


def resolve_base_model(reference: str, model_dir: Path, *, project_id: int | None = None) -> tuple[str, bool]:
    """Return (what to load, whether the tiny model was just built) for a base model reference."""
    if reference == TINY_MODEL:
        path, built = ensure_tiny_model(model_dir, project_id=project_id)
        return str(path), built
    return reference, False
