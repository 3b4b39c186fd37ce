"""Snapshots: freeze a project's items into numbered, immutable dataset files."""

import hashlib
import queue
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.annotation.models import Annotation
from app.annotation.preference import preference_pair
from app.db import new_session, unit_of_work
from app.errors import InvalidInput, NotFound
from app.items.models import Candidate, Item
from app.logging import get_logger
from app.pagination import PageRequest
from app.projects.models import Project
from app.snapshots.formats import EXPORT_FORMATS, DatasetWriter, ExportRow, file_name
from app.snapshots.models import Snapshot
from app.snapshots.splits import split_position

log = get_logger(__name__)

SPLITS = ("train", "validation")
DEFAULT_FORMATS = ("messages", "prompt_completion", "alpaca", "sharegpt", "preference")
ITEMS_PER_QUERY = 5_000
MAX_VALIDATION_FRACTION = 0.9


@dataclass(frozen=True)
class SnapshotOptions:
    formats: tuple[str, ...] = DEFAULT_FORMATS
    include_unreviewed: bool = False
    validation_fraction: float = 0.1
    seed: int = 0
    note: str = ""

    def validate(self) -> None:
        unknown = [f for f in self.formats if f not in EXPORT_FORMATS]
        if unknown or not self.formats:
            raise InvalidInput(
                f"invalid formats {list(unknown or self.formats)!r}: use one or more of {', '.join(EXPORT_FORMATS)}"
            )
        if not 0 <= self.validation_fraction <= MAX_VALIDATION_FRACTION:
            raise InvalidInput(
                f"invalid validation_fraction {self.validation_fraction}: use a number from 0 to {MAX_VALIDATION_FRACTION}"
            )


class _HashingFile:
    """A binary file that counts and hashes what is written to it."""

    def __init__(self, path: Path) -> None:
        self.handle: BinaryIO = path.open("wb")
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def close(self) -> None:
        self.handle.close()


@dataclass
class _ExportStats:
    items: int = 0
    splits: dict[str, int] = field(default_factory=lambda: {s: 0 for s in SPLITS})
    without_response: int = 0
    # The prompt group closest to the validation side, and whether more than one group was seen.
    lowest_position: float = 1.0
    lowest_prompt_hash: str | None = None
    several_groups: bool = False

    def note_group(self, prompt_hash: str, position: float) -> None:
        if self.lowest_prompt_hash is not None and prompt_hash != self.lowest_prompt_hash:
            self.several_groups = True
        if position < self.lowest_position:
            self.lowest_position = position
            self.lowest_prompt_hash = prompt_hash


def _statuses(options: SnapshotOptions) -> tuple[str, ...]:
    return ("new", "annotated", "accepted") if options.include_unreviewed else ("accepted",)


@dataclass
class _Chunk:
    """One page of items with the candidate and annotation data their export rows need."""

    items: list[Any]
    candidates: dict[int, dict[str, str]]
    accepted: dict[int, str]
    preferred: dict[int, tuple[int, int]]
    candidate_texts: dict[int, str]


def _fetch_chunks(db: Session, project_id: int, options: SnapshotOptions) -> Iterator[_Chunk]:
    """Yield the project's exportable items in id order, a page at a time."""
    statuses = _statuses(options)
    # Core queries on the connection: the ORM's per-row bookkeeping is not needed for plain columns.
    connection = db.connection()
    max_id = connection.execute(select(func.max(Item.id)).where(Item.project_id == project_id)).scalar() or 0
    wanted_statuses = set(statuses)
    # Every query below selects by primary-key or item-id range alone and filters the rest in
    # Python. Adding the project and status to the WHERE clause lets the planner choose the
    # (project, status) indexes instead, which scan every remaining row for each page.
    for range_start in range(1, max_id + 1, ITEMS_PER_QUERY):
        range_end = range_start + ITEMS_PER_QUERY - 1
        items = [
            row for row in connection.execute(
                select(
                    Item.id, Item.project_id, Item.status, Item.messages, Item.tools, Item.meta.label("meta"),
                    Item.external_id, Item.prompt_hash,
                ).where(Item.id.between(range_start, range_end)).order_by(Item.id)
            )
            if row.project_id == project_id and row.status in wanted_statuses
        ]
        if not items:
            continue
        first_id, last_id = items[0].id, items[-1].id
        item_ids = {row.id for row in items}

        candidates: dict[int, dict[str, str]] = {}
        for item_id, label, text in connection.execute(
            select(Candidate.item_id, Candidate.label, Candidate.text)
            .where(Candidate.item_id.between(first_id, last_id), Candidate.label.is_not(None))
            .order_by(Candidate.id)
        ):
            if item_id in item_ids:
                candidates.setdefault(item_id, {}).setdefault(label, text)
        accepted: dict[int, str] = {}
        # (chosen, rejected) candidate ids from the first accepted ranking or pairwise choice.
        preferred: dict[int, tuple[int, int]] = {}
        for item_id, status, response, ranking, choice in connection.execute(
            select(Annotation.item_id, Annotation.status, Annotation.response, Annotation.ranking, Annotation.choice)
            .where(Annotation.item_id.between(first_id, last_id))
            .order_by(Annotation.submitted_at, Annotation.id)
        ):
            if status != "accepted" or item_id not in item_ids:
                continue
            if response is not None:
                accepted.setdefault(item_id, response)
            pair = preference_pair(ranking, choice)
            if pair is not None:
                preferred.setdefault(item_id, pair)
        # An imported chosen/rejected pair wins; annotated pairs fill in where there is none.
        needed = {
            candidate_id for item_id, pair in preferred.items()
            if not ("chosen" in candidates.get(item_id, {}) and "rejected" in candidates.get(item_id, {}))
            for candidate_id in pair
        }
        candidate_texts = dict(
            connection.execute(select(Candidate.id, Candidate.text).where(Candidate.id.in_(needed))).all()
        ) if needed else {}

        yield _Chunk(items, candidates, accepted, preferred, candidate_texts)


def _prefetched(chunks: Iterator[_Chunk]) -> Iterator[_Chunk]:
    """Run the chunk queries on a helper thread, one page ahead of the caller.

    The database driver releases the GIL while it works, so the next page loads while this
    thread serializes the current one. Only the helper thread touches the session meanwhile.
    """
    pages: queue.Queue[_Chunk | BaseException | None] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                pages.put(chunk)
            pages.put(None)
        except BaseException as error:  # noqa: BLE001 - re-raised on the caller's thread below
            pages.put(error)

    thread = threading.Thread(target=produce, name="snapshot-prefetch", daemon=True)
    thread.start()
    try:
        while (page := pages.get()) is not None:
            if isinstance(page, BaseException):
                raise page
            yield page
    finally:
        stop.set()
        while thread.is_alive():
            try:
                pages.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()


def _iter_export_rows(
    db: Session, project_id: int, options: SnapshotOptions, stats: _ExportStats, forced_validation: str | None,
) -> Iterator[tuple[str, ExportRow]]:
    """Yield (split, row) for every item that goes into the snapshot, in item id order.

    Items whose prompt hash is `forced_validation` go to validation whatever their position.
    """
    for chunk in _prefetched(_fetch_chunks(db, project_id, options)):
        items, candidates, accepted = chunk.items, chunk.candidates, chunk.accepted
        preferred, candidate_texts = chunk.preferred, chunk.candidate_texts
        for item in items:
            labelled = candidates.get(item.id, {})
            response = accepted.get(item.id)
            if response is None and options.include_unreviewed:
                response = labelled.get("reference")
            chosen, rejected = labelled.get("chosen"), labelled.get("rejected")
            if not (chosen and rejected) and item.id in preferred:
                chosen_id, rejected_id = preferred[item.id]
                chosen, rejected = candidate_texts.get(chosen_id), candidate_texts.get(rejected_id)
            row = ExportRow(
                messages=item.messages, response=response,
                chosen=chosen, rejected=rejected, tools=item.tools,
                metadata=item.meta or {}, external_id=item.external_id,
            )
            if not response and not (row.chosen and row.rejected):
                stats.without_response += 1
                continue
            stats.items += 1
            position = split_position(item.prompt_hash, options.seed)
            stats.note_group(item.prompt_hash, position)
            if position < options.validation_fraction or item.prompt_hash == forced_validation:
                split = "validation"
            else:
                split = "train"
            stats.splits[split] += 1
            yield split, row


def _write_files(
    db: Session, project_id: int, options: SnapshotOptions, directory: Path, forced_validation: str | None = None,
) -> tuple[dict[str, Any], _ExportStats]:
    stats = _ExportStats()
    outputs: dict[tuple[str, str], tuple[_HashingFile, Any]] = {}
    for fmt in options.formats:
        for split in SPLITS:
            handle = _HashingFile(directory / file_name(fmt, split))
            outputs[(fmt, split)] = (handle, DatasetWriter(fmt, handle))
    skipped: dict[str, int] = {fmt: 0 for fmt in options.formats}
    try:
        for split, row in _iter_export_rows(db, project_id, options, stats, forced_validation):
            for fmt in options.formats:
                # Preference-only rows have no response for the SFT formats, and most SFT rows have
                # no pair for the preference format: neither is a row the format failed to hold.
                if fmt == "preference" and not (row.chosen and row.rejected):
                    continue
                if fmt != "preference" and not row.response:
                    continue
                try:
                    outputs[(fmt, split)][1].write(row)
                except ValueError:
                    # The writer checks can_express itself: a row this format cannot hold is counted.
                    skipped[fmt] += 1
    finally:
        for handle, writer in outputs.values():
            writer.close()
            handle.close()

    files: dict[str, Any] = {}
    preference_rows = sum(writer.rows for (fmt, _), (_, writer) in outputs.items() if fmt == "preference")
    for (fmt, split), (handle, writer) in sorted(outputs.items()):
        if fmt == "preference" and preference_rows == 0:
            # No item has a chosen/rejected pair, so there is no preference dataset to offer.
            (directory / file_name(fmt, split)).unlink()
            continue
        files[file_name(fmt, split)] = {
            "format": fmt, "split": split, "rows": writer.rows, "bytes": handle.size,
            "sha256": handle.digest.hexdigest(),
        }
    # Rows without a chosen/rejected pair are expected in a preference export, so only other
    # formats report what they could not hold (e.g. alpaca cannot hold tool calls).
    stats_skipped = {fmt: count for fmt, count in skipped.items() if count and fmt != "preference"}
    return {"files": files, "skipped_by_format": stats_skipped}, stats


def _dataset_card(project: Project, number: int, options: SnapshotOptions, stats: _ExportStats, files: dict[str, Any]) -> str:
    lines = [
        f"# {project.name} — snapshot {number}",
        "",
        f"- items: {stats.items} (train {stats.splits['train']}, validation {stats.splits['validation']})",
        f"- source: {'all unrejected items, imported responses where not reviewed' if options.include_unreviewed else 'accepted items'}",
        f"- split: validation fraction {options.validation_fraction}, seed {options.seed}, grouped by normalized prompt",
        f"- items left out for lack of a response: {stats.without_response}",
        "",
        "| file | rows | sha256 |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {name} | {info['rows']} | `{info['sha256']}` |" for name, info in files.items()]
    if options.note:
        lines += ["", options.note]
    return "\n".join(lines) + "\n"


def create_snapshot(project: Project, options: SnapshotOptions, *, user_id: int | None, snapshot_root: Path) -> Snapshot:
    """Write the snapshot files from one consistent read, then number and record them.

    The read runs outside any write transaction, so a long export does not block annotators.
    """
    options.validate()
    project_dir = snapshot_root / project.slug
    project_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=project_dir))

    try:
        read_session = new_session(write=False)
        try:
            if read_session.get_bind().dialect.name == "postgresql":
                read_session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            written, stats = _write_files(read_session, project.id, options, staging)
            if (
                options.validation_fraction > 0 and stats.splits["validation"] == 0 and stats.several_groups
            ):
                # A small snapshot can draw no validation prompt at all, which leaves nothing to
                # evaluate on. Write it again with the prompt group nearest the cut in validation.
                # That choice depends only on the seed and the prompts, so it stays deterministic.
                written, stats = _write_files(
                    read_session, project.id, options, staging, forced_validation=stats.lowest_prompt_hash,
                )
        finally:
            read_session.rollback()
            read_session.close()

        with unit_of_work() as db:
            db.execute(select(Project.id).where(Project.id == project.id).with_for_update())
            number = (db.scalar(select(func.max(Snapshot.number)).where(Snapshot.project_id == project.id)) or 0) + 1
            card = _dataset_card(project, number, options, stats, written["files"])
            (staging / "README.md").write_text(card, encoding="utf-8")
            final_dir = project_dir / str(number)
            if final_dir.exists():
                shutil.rmtree(final_dir)
            staging.rename(final_dir)
            snapshot = Snapshot(
                project_id=project.id, number=number, status="ready",
                filters={"statuses": list(_statuses(options)), "include_unreviewed": options.include_unreviewed},
                formats=list(options.formats), seed=options.seed, validation_fraction=options.validation_fraction,
                row_counts={
                    "items": stats.items, **stats.splits, "without_response": stats.without_response,
                    "skipped_by_format": written["skipped_by_format"],
                },
                files=written["files"], card=card, note=options.note, created_by_id=user_id,
            )
            db.add(snapshot)
            db.flush()
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    log.info("snapshot created", project_id=project.id, snapshot_number=number, items=stats.items)
    return snapshot


def list_snapshots(db: Session, project: Project, page: PageRequest) -> tuple[list[Snapshot], int]:
    total = db.scalar(select(func.count()).select_from(Snapshot).where(Snapshot.project_id == project.id)) or 0
    snapshots = db.scalars(
        select(Snapshot).where(Snapshot.project_id == project.id)
        .order_by(Snapshot.number.desc()).offset(page.offset).limit(page.page_size)
    ).all()
    return list(snapshots), total


def get_snapshot(db: Session, project: Project, number: int) -> Snapshot:
    snapshot = db.scalar(select(Snapshot).where(Snapshot.project_id == project.id, Snapshot.number == number))
    if snapshot is None:
        raise NotFound(f"snapshot {number} not found in project {project.slug!r}")
    return snapshot


def snapshot_directory(snapshot_root: Path, project: Project, snapshot: Snapshot) -> Path:
    return snapshot_root / project.slug / str(snapshot.number)


def snapshot_file_path(snapshot_root: Path, project: Project, snapshot: Snapshot, name: str) -> Path:
    """Return the path of one file of the snapshot; only names listed in its manifest are served."""
    if name != "README.md" and name not in snapshot.files:
        raise NotFound(f"file {name!r} not found in snapshot {snapshot.number}: see the snapshot's file list")
    path = snapshot_directory(snapshot_root, project, snapshot) / name
    if not path.is_file():
        raise NotFound(f"file {name!r} of snapshot {snapshot.number} is missing from the data directory")
    return path
